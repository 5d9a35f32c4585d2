"""Markdown tables: one builder for every table the project writes.

A table is described by its columns, ``(row key, header, format)`` triples, and
filled from rows that are dicts; a missing (None) value prints as ``missing``.
"""

__all__ = ["format_cell", "markdown_line", "markdown_header", "markdown_row", "markdown_table"]


def format_cell(value, fmt="{}", missing="-"):
    """``fmt.format(value)``, or ``missing`` where ``value`` is None."""
    return missing if value is None else fmt.format(value)


def markdown_line(cells):
    """One table line, ``| a | b |``, from already formatted cells."""
    return "| " + " | ".join(cells) + " |"


def markdown_header(columns, right_align=()):
    """The header line and the alignment line; columns whose key is in ``right_align``
    are right-aligned (``---:``), the others left as markdown's default (``---``)."""
    alignments = ["---:" if key in right_align else "---" for key, _, _ in columns]
    return markdown_line([header for _, header, _ in columns]) + "\n|" + "|".join(alignments) + "|"


def markdown_row(row, columns, missing="-"):
    """The line of one row: each column's value in that column's format."""
    return markdown_line([format_cell(row.get(key), fmt, missing) for key, _, fmt in columns])


def markdown_table(rows, columns, missing="-", right_align=()):
    """The whole table, header first, one line per row, ending in a newline."""
    lines = [markdown_header(columns, right_align), *(markdown_row(row, columns, missing) for row in rows)]
    return "\n".join(lines) + "\n"
