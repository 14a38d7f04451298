"""Training diffusion priors: the photo datasets (`data`) and the training loops."""
