"""Tables as an .xlsx workbook (openpyxl): one sheet per table, bold headers, columns
sized to their content. The statistics and the patrol's maintenance list use it."""

from __future__ import annotations

import io
from collections.abc import Sequence

Sheet = tuple[str, Sequence[str], Sequence[Sequence[object]]]


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
        sheet.title = title[:31]  # Excel's limit
        sheet.append(list(header))
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        for row in rows:
            sheet.append(list(row))
        for column, name in zip(sheet.columns, header, strict=False):
            width = max([len(str(name)) * 2, *(len(str(c.value or "")) + 2 for c in column)])
            sheet.column_dimensions[column[0].column_letter].width = min(40, width)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
