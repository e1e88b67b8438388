"""ShiftAddNet in PyTorch: layers, model zoo, data, training."""
