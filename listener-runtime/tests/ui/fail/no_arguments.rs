use listener_runtime::prelude::*;

#[listener_module]
#[derive(Default)]
pub struct Module;

impl Handler for Module {}

fn main() {}
