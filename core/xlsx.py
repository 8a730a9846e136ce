"""Tables as an .xlsx workbook (openpyxl): one sheet per table, bold headers, columns
sized to their content. The statistics and the patrol's maintenance list use it."""

from __future__ import annotations

import io
import re
from collections.abc import Sequence

Sheet = tuple[str, Sequence[str], Sequence[Sequence[object]]]

#: Control characters a worksheet cell cannot hold (openpyxl refuses them): a value from a
#: caller (an area path in a query, a camera name) is written without them, never a 500.
_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def _cell(value: object) -> object:
    return _ILLEGAL.sub("", value) if isinstance(value, str) else value


def workbook(sheets: Sequence[Sheet]) -> bytes:
    """``[(title, header, rows), ...]`` as the bytes of an .xlsx file."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    first = True
    for title, header, rows in sheets:
        sheet = book.active if first else book.create_sheet()
        assert sheet is not None
        first = False
        sheet.title = str(_cell(title))[:31]  # Excel's limit
        sheet.append([_cell(h) for h in header])
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        for row in rows:
            sheet.append([_cell(v) for v in row])
        for column, name in zip(sheet.columns, header, strict=False):
            width = max([len(str(name)) * 2, *(len(str(c.value or "")) + 2 for c in column)])
            sheet.column_dimensions[column[0].column_letter].width = min(40, width)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
