//! Container logs.
