"""Built-in continual-unlearning methods, one file each (importable as ``culbench.methods``)."""
