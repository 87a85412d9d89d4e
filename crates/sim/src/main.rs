//! `wa-pairing-sim`: a standalone offline WhatsApp server, driven by lines on standard input.
//!
//! Prints one JSON object per line on standard output (its URL first, then every event and
//! the outcome of every command) and reads commands on standard input, one per line, each
//! handled concurrently with the others, so one process can drive many clients at once.
//! The control protocol is described in the crate's README.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::sync::mpsc;
use wa_pairing_sim::{Refusal, Sim, SimConfig, SimEvent};

const HELP: &str = "wa-pairing-sim: an offline WhatsApp server for testing pairing clients

USAGE:
    wa-pairing-sim [--port PORT] [--qr-first-ref-secs S] [--qr-ref-secs S]

Point a client (whatsapp-rust built with danger-skip-cert-chain-verify, or Baileys) at the
printed URL. Standard output carries one JSON object per line: {\"event\":\"listening\",...}
first, then the simulator's events and the outcome of each command. Commands on standard
input, one per line, each handled at once (several may run together):

    code PHONE CODE                  the phone of PHONE types CODE (also: PHONE CODE)
    qr PHONE PAYLOAD                 the phone of PHONE scans a QR payload
    refuse PHONE STATUS [BACKOFF] [TIMES]
                                     refuse PHONE's next code requests with STATUS
                                     (400, 403, 429, 452 or 500), BACKOFF seconds,
                                     TIMES times (default: every time)
    clear PHONE                      remove PHONE's injected faults
    account PHONE [NAME...]          create PHONE's account (on WhatsApp from now on),
                                     named NAME if given (its push name); answers with
                                     its LID and push name
    send PHONE TO TEXT...            the phone of PHONE types TEXT to TO (accounts exist
                                     from their first use); answers with the message id
    read PHONE ID                    the phone of PHONE reads message ID it received: the
                                     companion that sent it gets a read receipt
    inbox PHONE                      the messages PHONE's phone received, texts included
    receipts PHONE                   the receipts companions sent PHONE's phone
    counters                         print what the simulator has seen: connections,
                                     pairings, logins and the most logins in one second

OPTIONS:
    --port PORT              listen on 127.0.0.1:PORT (default: a free port)
    --qr-first-ref-secs S    lifetime of the first pair-device ref (default: 60)
    --qr-ref-secs S          lifetime of each later ref (default: 20)
    -h, --help               print this help";

/// A JSON string literal.
fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ =
                    std::fmt::Write::write_fmt(&mut out, format_args!("\\u{:04x}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One event as a JSON line. Phone numbers are printed whole: this is the control channel
/// of a test, not a log.
fn event_json(event: &SimEvent) -> String {
    let pd = |name: &str, phone: &str, key: &str, n: String| {
        format!(
            "{{\"event\":\"{name}\",\"phone\":{},\"{key}\":{n}}}",
            json_str(phone)
        )
    };
    match event {
        SimEvent::Connected { conn } => format!("{{\"event\":\"connected\",\"conn\":{conn}}}"),
        SimEvent::Disconnected { conn } => {
            format!("{{\"event\":\"disconnected\",\"conn\":{conn}}}")
        }
        SimEvent::CodeRequested { phone, count } => {
            pd("code_requested", phone, "count", count.to_string())
        }
        SimEvent::CodeRefused { phone, code } => {
            pd("code_refused", phone, "code", code.to_string())
        }
        SimEvent::CodeEntered { phone, ok } => pd("code_entered", phone, "ok", ok.to_string()),
        SimEvent::Paired { phone, device } => pd("paired", phone, "device", device.to_string()),
        SimEvent::LoggedIn { phone, device } => {
            pd("logged_in", phone, "device", device.to_string())
        }
        SimEvent::LoginRefused { phone, reason } => {
            pd("login_refused", phone, "reason", reason.to_string())
        }
        SimEvent::StreamErrorSent { conn, code } => {
            format!("{{\"event\":\"stream_error\",\"conn\":{conn},\"code\":{code}}}")
        }
        SimEvent::DeviceRemoved { phone, device } => {
            pd("device_removed", phone, "device", device.to_string())
        }
        SimEvent::KeysShared { phone, device } => {
            pd("keys_shared", phone, "device", device.to_string())
        }
        SimEvent::HistorySent { phone, device } => {
            pd("history_sent", phone, "device", device.to_string())
        }
        SimEvent::MessageReceived { phone, id } => {
            pd("message_received", phone, "id", json_str(id))
        }
        SimEvent::ReceiptReceived { phone, id } => {
            pd("receipt_received", phone, "id", json_str(id))
        }
        other => format!("{{\"event\":{}}}", json_str(&format!("{other:?}"))),
    }
}

/// Runs one command line; returns the JSON line that reports its outcome.
async fn command(sim: Sim, line: String) -> Option<String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let (cmd, args) = match words.as_slice() {
        [] => return None,
        [phone, code] if phone.bytes().all(|b| b.is_ascii_digit()) => ("code", vec![*phone, *code]),
        [cmd, args @ ..] => (*cmd, args.to_vec()),
    };
    if (cmd, args.as_slice()) == ("counters", &[][..]) {
        let c = sim.counters();
        return Some(format!(
            "{{\"event\":\"counters\",\"connections\":{},\"open_connections\":{},\"pairings\":{},\"logins\":{},\"max_logins_per_second\":{},\"key_shares\":{},\"history_notifications\":{}}}",
            c.connections,
            c.open_connections,
            c.pairings,
            c.logins,
            c.max_logins_per_second,
            c.key_shares,
            c.history_notifications
        ));
    }
    let phone = args.first().copied().unwrap_or_default();
    // `Ok(fields)`: the command's answer, as JSON members after `command` and `phone`.
    let outcome: Result<String, String> = match (cmd, args.as_slice()) {
        ("code", [p, code]) => sim
            .phone(p)
            .enter_code(code)
            .await
            .map(|()| String::new())
            .map_err(|e| e.to_string()),
        ("qr", [p, payload]) => sim
            .phone(p)
            .scan_qr(payload)
            .await
            .map(|()| String::new())
            .map_err(|e| e.to_string()),
        ("refuse", [p, status, rest @ ..]) => refusal(status, rest.first().copied()).map(|r| {
            let times = rest.get(1).and_then(|t| t.parse().ok());
            sim.phone(p).refuse_code_requests(r, times);
            String::new()
        }),
        ("clear", [p]) => {
            sim.phone(p).clear_faults();
            Ok(String::new())
        }
        ("account", [p, ..]) => {
            let phone = sim.phone(p);
            // The push name is the rest of the line after the number, as typed.
            if let Some(name) = after_words(&line, 2) {
                phone.set_push_name(name);
            }
            Ok(format!(
                ",\"lid\":{},\"push_name\":{}",
                json_str(&phone.lid()),
                json_str(&phone.push_name())
            ))
        }
        ("send", [p, to, first, ..]) => {
            // The text is the rest of the line after the recipient, as typed.
            let text = after_words(&line, 3).unwrap_or(first);
            sim.phone(p)
                .send_text(to, text)
                .await
                .map(|id| format!(",\"to\":{},\"id\":{}", json_str(to), json_str(&id)))
                .map_err(|e| e.to_string())
        }
        ("read", [p, id]) => sim
            .phone(p)
            .read(id)
            .map(|()| format!(",\"id\":{}", json_str(id)))
            .map_err(|e| e.to_string()),
        ("inbox", [p]) => {
            let messages: Vec<String> = sim
                .phone(p)
                .inbox()
                .iter()
                .map(|m| {
                    format!(
                        "{{\"id\":{},\"from\":{},\"from_device\":{},\"chat\":{},\"text\":{},\"enc\":\"{}\"}}",
                        json_str(&m.id),
                        json_str(&m.from),
                        m.from_device,
                        json_str(&m.chat),
                        m.text.as_deref().map_or_else(|| "null".to_owned(), json_str),
                        m.enc.wire()
                    )
                })
                .collect();
            Ok(format!(",\"messages\":[{}]", messages.join(",")))
        }
        ("receipts", [p]) => {
            let receipts: Vec<String> = sim
                .phone(p)
                .receipts()
                .iter()
                .map(|r| {
                    let ids: Vec<String> = r.ids.iter().map(|i| json_str(i)).collect();
                    format!(
                        "{{\"ids\":[{}],\"from\":{},\"from_device\":{},\"type\":{}}}",
                        ids.join(","),
                        json_str(&r.from),
                        r.from_device,
                        r.kind
                            .as_deref()
                            .map_or_else(|| "null".to_owned(), json_str)
                    )
                })
                .collect();
            Ok(format!(",\"receipts\":[{}]", receipts.join(",")))
        }
        _ => Err(format!("unknown command {line:?}; see --help")),
    };
    Some(match outcome {
        Ok(fields) => format!(
            "{{\"event\":\"done\",\"command\":{},\"phone\":{}{fields}}}",
            json_str(cmd),
            json_str(phone)
        ),
        Err(e) => format!(
            "{{\"event\":\"error\",\"command\":{},\"phone\":{},\"message\":{}}}",
            json_str(cmd),
            json_str(phone),
            json_str(&e)
        ),
    })
}

/// What follows the first `n` words of `line`, its inner spacing kept.
fn after_words(line: &str, n: usize) -> Option<&str> {
    let mut rest = line.trim_start();
    for _ in 0..n {
        rest = rest.split_once(char::is_whitespace)?.1.trim_start();
    }
    (!rest.is_empty()).then_some(rest.trim_end())
}

fn refusal(status: &str, backoff: Option<&str>) -> Result<Refusal, String> {
    let backoff = match backoff {
        None => None,
        Some(s) => {
            Some(Duration::from_secs(s.parse().map_err(|_| {
                format!("backoff {s:?} is not a number of seconds")
            })?))
        }
    };
    Ok(match status {
        "400" => Refusal::BadRequest { backoff },
        "403" => Refusal::Forbidden,
        "429" => Refusal::RateOverlimit { backoff },
        "452" => Refusal::FeatureNotAvailable,
        "500" => Refusal::InternalServerError,
        other => {
            return Err(format!(
                "cannot refuse with {other:?}: 400, 403, 429, 452 or 500"
            ));
        }
    })
}

fn secs(arg: Option<String>, flag: &str) -> Result<Duration, String> {
    arg.and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("{flag} needs a positive number of seconds"))
}

fn parse_args() -> Result<Option<SimConfig>, String> {
    let mut args = std::env::args().skip(1);
    let mut port = 0u16;
    let mut config = SimConfig::default();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--port" => {
                port = args
                    .next()
                    .and_then(|p| p.parse().ok())
                    .ok_or("--port needs a number from 1 to 65535")?;
            }
            "--qr-first-ref-secs" => {
                config = config.qr_first_ref(secs(args.next(), "--qr-first-ref-secs")?);
            }
            "--qr-ref-secs" => config = config.qr_ref(secs(args.next(), "--qr-ref-secs")?),
            other => return Err(format!("unknown argument {other:?}; see --help")),
        }
    }
    Ok(Some(
        config.bind(std::net::SocketAddr::from(([127, 0, 0, 1], port))),
    ))
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal: never escape codes in a file or a pipe.
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none(),
        )
        .init();
    let config = match parse_args() {
        Ok(Some(config)) => config,
        Ok(None) => {
            println!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let sim = match Sim::start(config).await {
        Ok(sim) => sim,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    // One writer, so lines never interleave; each is flushed as it is written.
    let (out, mut lines_out) = mpsc::unbounded_channel::<String>();
    let writer = std::thread::spawn(move || {
        let mut stdout = std::io::stdout();
        while let Some(line) = lines_out.blocking_recv() {
            if writeln!(stdout, "{line}")
                .and_then(|()| stdout.flush())
                .is_err()
            {
                break;
            }
        }
    });
    let _ = out.send(format!(
        "{{\"event\":\"listening\",\"url\":{}}}",
        json_str(&sim.url())
    ));
    let mut events = sim.events();
    let events_out = out.clone();
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(event) => {
                    let _ = events_out.send(event_json(&event));
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    let _ = events_out.send(format!("{{\"event\":\"lagged\",\"missed\":{n}}}"));
                }
                Err(_) => break,
            }
        }
    });
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            line = lines.next_line() => match line {
                Ok(Some(line)) => {
                    let (sim, out) = (sim.clone(), out.clone());
                    tokio::spawn(async move {
                        if let Some(reply) = command(sim, line).await {
                            let _ = out.send(reply);
                        }
                    });
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
    // Every line already written was flushed; the writer thread ends with the process.
    drop((out, writer));
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::after_words;

    #[test]
    fn a_sent_text_is_the_rest_of_the_line_as_typed() {
        assert_eq!(
            after_words("send 6281  6282   halo,  apa kabar? ", 3),
            Some("halo,  apa kabar?")
        );
        assert_eq!(after_words("send 6281 6282", 3), None);
        assert_eq!(after_words("send 6281 6282   ", 3), None);
    }
}
