"""File readers: each turns one file into a :class:`data.records.ReadResult`."""
