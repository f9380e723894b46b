"""The Open Inference Protocol's documents, for OpenAPI and for anyone reading /docs.

The routes parse and write these bodies themselves (app.inference_protocol): the binary tensor
extension puts raw bytes after the JSON, which no JSON model can read. Tests check that what the
routes send validates against these models.
"""

from typing import Any

from pydantic import BaseModel, Field

Parameters = dict[str, str | int | float | bool]
TensorData = list[Any]

PARAMETERS = "key/value pairs; each value a string, number or boolean"


class ServerMetadata(BaseModel):
    name: str = Field(examples=["lenet5"])
    version: str = Field(description="the service's version")
    extensions: list[str] = Field(
        description="the protocol extensions spoken", examples=[["binary_tensor_data"]]
    )


class ServerLive(BaseModel):
    live: bool


class ServerReady(BaseModel):
    ready: bool


class ModelReady(BaseModel):
    name: str
    ready: bool


class MetadataTensor(BaseModel):
    name: str
    datatype: str = Field(examples=["FP32"])
    shape: list[int] = Field(description="-1 for a dimension of any size (the batch)")


class ModelMetadataResponse(BaseModel):
    name: str = Field(examples=["lenet5"])
    versions: list[str] = Field(description="the version serving, the only one")
    platform: str = Field(examples=["onnxruntime_onnx"])
    inputs: list[MetadataTensor] = Field(
        description="send exactly one of them: `image` (the model's own input) or `upload`"
    )
    outputs: list[MetadataTensor]


class RequestInput(BaseModel):
    name: str = Field(description="`image` or `upload`")
    shape: list[int] = Field(description="image: [N, 1, 32, 32]; upload: [N]")
    datatype: str = Field(description="image: FP32; upload: BYTES")
    parameters: Parameters | None = Field(
        None,
        description=f"{PARAMETERS}. `binary_data_size`: the tensor's bytes follow the JSON "
        "(binary tensor data extension) instead of `data`",
    )
    data: TensorData | None = Field(
        None,
        description="the elements, flat in row-major order or nested as `shape`; for "
        "`upload`, each element is an image file in base64",
    )


class RequestOutput(BaseModel):
    name: str = Field(description="distances, digit or rejected")
    parameters: Parameters | None = Field(
        None, description=f"{PARAMETERS}. `binary_data`: true answers this output as binary data"
    )


class InferenceRequest(BaseModel):
    """An inference request: JSON, or with the binary tensor data extension a JSON header of
    Inference-Header-Content-Length bytes followed by the binary tensors."""

    id: str | None = Field(None, description="returned in the response")
    parameters: Parameters | None = Field(
        None,
        description=f"{PARAMETERS}. `binary_data_output`: true answers every output as binary "
        "data unless the output says otherwise",
    )
    inputs: list[RequestInput] = Field(min_length=1, max_length=1)
    outputs: list[RequestOutput] | None = Field(
        None, description="the outputs to answer, in this order; all of them when absent"
    )


class ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    parameters: Parameters | None = Field(
        None, description="`binary_data_size`: the output's bytes follow the JSON"
    )
    data: TensorData | None = Field(None, description="the elements, flat in row-major order")


class InferenceResponse(BaseModel):
    model_name: str
    model_version: str
    id: str | None = Field(None, description="the request's `id`, when it had one")
    parameters: Parameters | None = Field(
        None, description="`sha256`: the SHA-256 of the model file that answered"
    )
    outputs: list[ResponseOutput]


class ProtocolErrorBody(BaseModel):
    """Every error of the inference protocol's endpoints (not `detail`, as elsewhere)."""

    error: str = Field(description="what went wrong, for a person to read")
