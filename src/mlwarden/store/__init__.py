"""Storage: the metadata database and the content-addressed blob stores."""
