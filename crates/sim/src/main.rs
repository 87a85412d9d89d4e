//! `wa-pairing-sim`: a standalone offline WhatsApp server to drive by hand.
//!
//! Prints its URL and every pair-code request (phone numbers redacted), and reads lines of
//! `PHONE CODE` on standard input: the simulated phone of `PHONE` "types" `CODE`.

use std::process::ExitCode;

use tokio::io::{AsyncBufReadExt as _, BufReader};
use wa_pairing_sim::{Sim, SimConfig, SimEvent};

const HELP: &str = "wa-pairing-sim: an offline WhatsApp server for testing pairing clients

USAGE:
    wa-pairing-sim [--port PORT]

Point a whatsapp-rust client (built with danger-skip-cert-chain-verify) at the printed
URL. When it requests a pairing code, type a line `PHONE CODE` (for example
`6281234567890 ABCD-EFGH`) to make the simulated phone enter the code the client shows.

OPTIONS:
    --port PORT    listen on 127.0.0.1:PORT (default: a free port)
    -h, --help     print this help";

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut args = std::env::args().skip(1);
    let mut port = 0u16;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => {
                println!("{HELP}");
                return ExitCode::SUCCESS;
            }
            "--port" => match args.next().and_then(|p| p.parse().ok()) {
                Some(p) => port = p,
                None => {
                    eprintln!("error: --port needs a number from 1 to 65535");
                    return ExitCode::FAILURE;
                }
            },
            other => {
                eprintln!("error: unknown argument {other:?}; see --help");
                return ExitCode::FAILURE;
            }
        }
    }
    let config = SimConfig::default().bind(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    let sim = match Sim::start(config).await {
        Ok(sim) => sim,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("listening on {}", sim.url());
    let mut events = sim.events();
    tokio::spawn(async move {
        while let Ok(event) = events.recv().await {
            if matches!(
                event,
                SimEvent::CodeRequested { .. }
                    | SimEvent::Paired { .. }
                    | SimEvent::LoggedIn { .. }
                    | SimEvent::CodeEntered { .. }
            ) {
                println!("{event:?}");
            }
        }
    });
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            line = lines.next_line() => match line {
                Ok(Some(line)) => {
                    let mut parts = line.split_whitespace();
                    match (parts.next(), parts.next()) {
                        (Some(phone), Some(code)) => {
                            let phone = sim.phone(phone);
                            match phone.enter_code(code).await {
                                Ok(()) => println!("code entered"),
                                Err(e) => println!("error: {e}"),
                            }
                        }
                        _ => println!("type: PHONE CODE"),
                    }
                }
                // Standard input closed: keep serving until interrupted.
                Ok(None) | Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    break;
                }
            },
        }
    }
    sim.shutdown().await;
    ExitCode::SUCCESS
}
