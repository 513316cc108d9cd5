//! `voicegw`: run the gateway, or check a configuration file.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use connector::config::{Config, EMBEDDED_DEFAULT};
use gateway::observe::logging::{self, LogFormat};

#[derive(Parser)]
#[command(
    name = "voicegw",
    version,
    about = "A self-hosted SIP/RTP voice connector and media gateway"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Run {
        /// Configuration file. When the default path does not exist, the embedded loopback demo
        /// configuration is used.
        #[arg(long, short, default_value = "configs/voicegw.toml")]
        config: PathBuf,
        /// Log format on stderr.
        #[arg(long, value_enum, default_value_t = LogFormat::Human)]
        log_format: LogFormat,
    },
    /// Validate a configuration file and exit (status 0 if valid, 1 with the error otherwise).
    CheckConfig {
        #[arg(default_value = "configs/voicegw.toml")]
        file: PathBuf,
    },
    /// Print the embedded default configuration.
    DefaultConfig,
    /// Print the table of every metric (CloudWatch and Prometheus names, type, unit, labels).
    Metrics,
    /// Run the media statistics over a capture (pcap or pcapng) and print one JSON object per
    /// RTP stream.
    Analyze { file: PathBuf },
    /// Speak every IVR prompt with espeak-ng and write them as 8 kHz µ-law WAV files (how
    /// `assets/prompts/` is made).
    Prompts {
        #[arg(long, default_value = "assets/prompts")]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { file } => match Config::load(&file) {
            Ok(v) => {
                println!(
                    "{}: OK ({} voice connectors, {} carriers, {} phone numbers)",
                    file.display(),
                    v.config.voice_connectors.len(),
                    v.config.carriers.len(),
                    v.config.phone_numbers.len()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Analyze { file } => {
            let bytes = match std::fs::read(&file) {
                Ok(b) => b,
                Err(e) => {
                    eprintln!("error: cannot read {}: {e}", file.display());
                    return ExitCode::FAILURE;
                }
            };
            match gateway::analyze::analyze(&bytes) {
                Ok(streams) => {
                    for s in streams {
                        match serde_json::to_string(&s) {
                            Ok(line) => println!("{line}"),
                            Err(e) => eprintln!("error: {e}"),
                        }
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {}: {e}", file.display());
                    ExitCode::FAILURE
                }
            }
        }
        Command::Prompts { out } => {
            use gateway::meet::prompts;
            if let Err(e) = std::fs::create_dir_all(&out) {
                eprintln!("error: {}: {e}", out.display());
                return ExitCode::FAILURE;
            }
            for p in meeting::ivr::Prompt::ALL {
                let written = prompts::synthesise(p, &out).and_then(|s| {
                    prompts::write(&out, p, &s)?;
                    Ok(s.len())
                });
                match written {
                    Ok(n) => println!("{}: {:.1} s", p.name(), n as f64 / f64::from(prompts::RATE)),
                    Err(e) => {
                        eprintln!("error: {}: {e}", p.name());
                        return ExitCode::FAILURE;
                    }
                }
            }
            ExitCode::SUCCESS
        }
        Command::Metrics => {
            print!("{}", metrics::names::markdown_table());
            ExitCode::SUCCESS
        }
        Command::DefaultConfig => {
            print!("{EMBEDDED_DEFAULT}");
            ExitCode::SUCCESS
        }
        Command::Run { config, log_format } => {
            logging::init(log_format);
            let from_file =
                config.exists() || config.as_path() != std::path::Path::new("configs/voicegw.toml");
            let loaded = if from_file {
                Config::load(&config)
            } else {
                tracing::info!(
                    "configs/voicegw.toml not found: using the embedded default configuration"
                );
                Config::parse(EMBEDDED_DEFAULT, "embedded default")
            };
            let v = match loaded {
                Ok(v) => v,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(gateway::driver::run(v, from_file.then_some(config))) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
