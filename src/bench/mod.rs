//! `gridloop bench`: the province-scale benchmark harness (docs/performance.md).
//!
//! - `seed` writes a province and N cases through the store's bulk path;
//! - `load` drives a server over HTTP on loopback and reports latencies and peak RSS;
//! - `sweep` times overdue sweep passes over a seeded store.

mod load;
mod province;
mod seed;
mod sweep;

use std::process::ExitCode;

use clap::Subcommand;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Write a province (85,000 grids) and N cases over years into an empty store.
    Seed(seed::SeedArgs),
    /// Drive a server with realistic requests at 1, 16 and 256 clients; print latencies.
    Load(load::LoadArgs),
    /// Time overdue sweep passes over a seeded store.
    Sweep(sweep::SweepArgs),
}

pub async fn run(cmd: BenchCommand) -> Result<ExitCode, String> {
    match cmd {
        BenchCommand::Seed(args) => seed::run(args).await,
        BenchCommand::Load(args) => load::run(args).await,
        BenchCommand::Sweep(args) => sweep::run(args).await,
    }
}
