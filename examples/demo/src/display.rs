//! The demo's progress display: timestamped steps, and the pairing code drawn large.

use std::io::{IsTerminal as _, Write as _};
use std::time::Instant;

/// Prints the demo's steps.
pub(crate) struct Display {
    started: Instant,
    color: bool,
}

/// Glyphs 5 wide and 5 high for WhatsApp's code alphabet and the dash.
const FONT: &[(char, [&str; 5])] = &[
    ('1', [" ██  ", "███  ", " ██  ", " ██  ", "█████"]),
    ('2', ["████ ", "    █", " ███ ", "█    ", "█████"]),
    ('3', ["████ ", "    █", " ███ ", "    █", "████ "]),
    ('4', ["█  █ ", "█  █ ", "█████", "   █ ", "   █ "]),
    ('5', ["█████", "█    ", "████ ", "    █", "████ "]),
    ('6', [" ███ ", "█    ", "████ ", "█   █", " ███ "]),
    ('7', ["█████", "   █ ", "  █  ", " █   ", " █   "]),
    ('8', [" ███ ", "█   █", " ███ ", "█   █", " ███ "]),
    ('9', [" ███ ", "█   █", " ████", "    █", " ███ "]),
    ('A', [" ███ ", "█   █", "█████", "█   █", "█   █"]),
    ('B', ["████ ", "█   █", "████ ", "█   █", "████ "]),
    ('C', [" ████", "█    ", "█    ", "█    ", " ████"]),
    ('D', ["████ ", "█   █", "█   █", "█   █", "████ "]),
    ('E', ["█████", "█    ", "████ ", "█    ", "█████"]),
    ('F', ["█████", "█    ", "████ ", "█    ", "█    "]),
    ('G', [" ████", "█    ", "█  ██", "█   █", " ████"]),
    ('H', ["█   █", "█   █", "█████", "█   █", "█   █"]),
    ('J', ["  ███", "   █ ", "   █ ", "█  █ ", " ██  "]),
    ('K', ["█   █", "█  █ ", "███  ", "█  █ ", "█   █"]),
    ('L', ["█    ", "█    ", "█    ", "█    ", "█████"]),
    ('M', ["█   █", "██ ██", "█ █ █", "█   █", "█   █"]),
    ('N', ["█   █", "██  █", "█ █ █", "█  ██", "█   █"]),
    ('P', ["████ ", "█   █", "████ ", "█    ", "█    "]),
    ('Q', [" ███ ", "█   █", "█ █ █", "█  █ ", " ██ █"]),
    ('R', ["████ ", "█   █", "████ ", "█  █ ", "█   █"]),
    ('S', [" ████", "█    ", " ███ ", "    █", "████ "]),
    ('T', ["█████", "  █  ", "  █  ", "  █  ", "  █  "]),
    ('V', ["█   █", "█   █", "█   █", " █ █ ", "  █  "]),
    ('W', ["█   █", "█   █", "█ █ █", "██ ██", "█   █"]),
    ('X', ["█   █", " █ █ ", "  █  ", " █ █ ", "█   █"]),
    ('Y', ["█   █", " █ █ ", "  █  ", "  █  ", "  █  "]),
    ('Z', ["█████", "   █ ", "  █  ", " █   ", "█████"]),
    ('-', ["     ", "     ", " ███ ", "     ", "     "]),
];

/// Draws `text` (code characters and dashes) five lines high.
pub(crate) fn big(text: &str) -> Vec<String> {
    let mut lines = vec![String::new(); 5];
    for c in text.chars() {
        let glyph = FONT
            .iter()
            .find(|(g, _)| *g == c)
            .map_or(["     "; 5], |(_, rows)| *rows);
        for (line, row) in lines.iter_mut().zip(glyph) {
            line.push_str(row);
            line.push_str("  ");
        }
    }
    lines.iter().map(|l| l.trim_end().to_owned()).collect()
}

impl Display {
    pub(crate) fn new() -> Self {
        Self {
            started: Instant::now(),
            color: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    /// One step: elapsed time, a marker and the text.
    pub(crate) fn step(&self, marker: &str, text: &str) {
        let t = self.started.elapsed().as_secs_f64();
        let line = format!("[{t:>6.2}s] {marker} {text}");
        println!("{}", self.paint("1", &line));
        let _ = std::io::stdout().flush();
    }

    /// A detail under a step.
    pub(crate) fn detail(&self, text: &str) {
        println!("           {}", self.paint("2", text));
    }

    /// A failure step.
    pub(crate) fn fail(&self, text: &str) {
        let t = self.started.elapsed().as_secs_f64();
        println!("{}", self.paint("31;1", &format!("[{t:>6.2}s] ✗ {text}")));
    }

    /// The code, large, with the steps a person follows on the phone.
    pub(crate) fn code(&self, display: &str, valid_s: u64) {
        println!();
        for line in big(display) {
            println!("      {}", self.paint("32;1", &line));
        }
        println!();
        println!("      {display}  (valid about {valid_s} s)");
        println!();
        println!("      On the phone: WhatsApp > Settings > Linked devices > Link a device >");
        println!("      Link with phone number instead, then type the code above.");
        println!("      Di ponsel: WhatsApp > Setelan > Perangkat tertaut > Tautkan perangkat >");
        println!("      Tautkan dengan nomor telepon saja, lalu ketik kode di atas.");
        println!();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_character_has_a_glyph_of_the_same_size() {
        for c in wa_pairing_code::ALPHABET.chars().chain(['-']) {
            let (_, rows) = FONT.iter().find(|(g, _)| *g == c).expect("glyph");
            for row in rows {
                assert_eq!(row.chars().count(), 5, "{c}");
            }
        }
        assert_eq!(FONT.len(), 33);
    }

    #[test]
    fn big_text_has_five_lines() {
        let lines = big("ABCD-EFGH");
        assert_eq!(lines.len(), 5);
        assert!(lines.iter().all(|l| l.chars().count() <= 9 * 7));
    }
}
