"""Diagnosing training: weight initialization (activations and gradients layer by layer), and why
training stalled (curvature, plateau, saddle, local minimum, gradient noise), with a remedy."""
