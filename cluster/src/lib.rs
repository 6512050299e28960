//! aednet across several nodes sharing one PostgreSQL (see docs/operations.md, "Scaling out").
