"""Pure logic about images: quality scores, the filter, safe loading and folder audits."""
