"""LeNet-5 as in LeCun et al. 1998, and the trained model the service ships with."""
