use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    aednet::cli::run(aednet::cli::Cli::parse()).await
}
