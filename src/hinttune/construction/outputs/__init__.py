"""What a run writes and shows: export, summary, report, viewer, hub, comparisons."""
