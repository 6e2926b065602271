//! Example listener modules: the seed's two templates ported, and a classic module.
