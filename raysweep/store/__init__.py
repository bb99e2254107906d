"""What a run writes: storage (a local path or an object store), the results dataset, and the
layout of OUT."""
