//! `vigil commands …`: the key pair cloud → device commands are signed
//! with (`vigil_model::command_sig`), separate from the model release key.
//!
//! | command | does |
//! |---|---|
//! | `keygen --out DIR` | writes `DIR/command-signing.key` (0600, for `vigil actions`) and `DIR/command-verify.pub` (for `vigil-edge`) |

use std::path::PathBuf;

use clap::{Args, Subcommand};
use vigil_service::outln;

/// `vigil commands`.
#[derive(Debug, Args)]
pub struct CommandsArgs {
    #[command(subcommand)]
    pub command: CommandsCommand,
}

/// The operator commands.
#[derive(Debug, Subcommand)]
pub enum CommandsCommand {
    /// Make the command key pair: DIR/command-signing.key (for `vigil
    /// actions`, mode 0600) and DIR/command-verify.pub (for edge agents).
    /// Refuses to overwrite either; may share DIR with the release keys.
    Keygen {
        /// Directory to write the key files to (created if missing).
        #[arg(long)]
        out: PathBuf,
    },
}

/// Runs a `vigil commands` command.
pub fn run(args: CommandsArgs) -> anyhow::Result<()> {
    match args.command {
        CommandsCommand::Keygen { out } => {
            std::fs::create_dir_all(&out)?;
            let keys = vigil_model::command_keygen(&out)?;
            outln!(
                "wrote {} (for vigil actions: --command-signing-key) and {} \
                 (for vigil-edge: --command-verify-key); key id {}",
                keys.signing_key.display(),
                keys.verify_key.display(),
                keys.key_id
            )?;
            Ok(())
        }
    }
}
