from rest_framework.pagination import CursorPagination


class NewestFirstCursor(CursorPagination):
    """Cursor pagination (stable under inserts): ``?cursor=…&page_size=…`` (max 200)."""

    ordering = "-id"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
