// Placeholder: the implementation lands with issue 14's parts.
