"""Development scripts: local stack, load generator, log analysis, exports, previews."""
