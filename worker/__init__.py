"""The imgpress worker: RQ task functions (thin) and the pure image pipeline."""
