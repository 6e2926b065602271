//! Example listener modules (placeholder: being written).
