//! `vigil tokens new --out FILE`: an API tokens file for the services'
//! HTTP APIs ([`vigil_service::http_auth`]): one `read` token (the
//! dashboard, the audit API) and one `read,score` token (also
//! `POST /v1/score`), written with mode 0600 and printed once. An existing
//! file is kept unless `--force`, so an init container can run it on every
//! start.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use vigil_service::broker_auth::write_atomic;
use vigil_service::http_auth::{new_token, Tokens};
use vigil_service::outln;

/// `vigil tokens`.
#[derive(Debug, Args)]
pub struct TokensArgs {
    #[command(subcommand)]
    pub command: TokensCommand,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Write a new tokens file (a `read` and a `read,score` token).
    New {
        /// The file to write (mode 0600).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Replace an existing file (its tokens stop working).
        #[arg(long)]
        force: bool,
    },
}

/// Runs a `vigil tokens` command.
pub fn run(args: TokensArgs) -> anyhow::Result<()> {
    match args.command {
        TokensCommand::New { out, force } => {
            if out.exists() && !force {
                Tokens::load(&out).with_context(|| {
                    format!("{} exists and is not a valid tokens file", out.display())
                })?;
                outln!("{} exists; kept (--force replaces it)", out.display())?;
                return Ok(());
            }
            let (read, score) = (new_token(), new_token());
            let text = format!(
                "# Vigil API tokens (VIGIL_API_TOKENS_FILE): SCOPES TOKEN per line.\n\
                 read {read}\n\
                 read,score {score}\n"
            );
            write_atomic(&out, text.as_bytes(), 0o600)?;
            outln!("wrote {}", out.display())?;
            outln!("read token (dashboard, audit API): {read}")?;
            outln!("read,score token (also POST /v1/score): {score}")?;
            Ok(())
        }
    }
}
