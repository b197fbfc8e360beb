"""Scale-out: shards of a run and their merge, the cost plan."""
