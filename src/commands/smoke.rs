//! `smoke`: not built yet.

use clap::Args;

use crate::exit::{Exit, Failure};
use crate::report::Reporter;

#[derive(Debug, Args)]
pub struct SmokeArgs {
    /// Arguments of the coming implementation
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    pub rest: Vec<String>,
}

pub async fn run(_args: SmokeArgs, _reporter: &Reporter) -> anyhow::Result<Exit> {
    Err(Failure::NotImplemented("smoke").into())
}
