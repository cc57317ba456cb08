"""Django project of the library demo (settings only: the app has no views)."""
