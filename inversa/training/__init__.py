"""Training: one loop (`loop`) for the photo prior (`photo`) and the class-conditional prior
(`conditional`), their UNets (`unets`), the Fashion-MNIST classifier (`classifier`), the training
data (`data`) and the run's pictures (`plots`)."""
