"""ToyWorld: a synthetic concept world of shapes, colours, patterns and characters."""
