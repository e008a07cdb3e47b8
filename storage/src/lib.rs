//! SQLite storage for payments (see issue 4).
