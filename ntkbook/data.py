"""(being written) — see ../shared/design.md."""
