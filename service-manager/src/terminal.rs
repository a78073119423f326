//! The terminal at the edge, shared by both command lines: prompting for a value (secret ones
//! without echo), yes/no confirmations, and reading timeouts as durations.

use std::io::{BufRead, IsTerminal};
use std::time::Duration;

/// Whether standard input is a terminal someone can answer on.
pub fn interactive() -> bool {
    std::io::stdin().is_terminal()
}

/// Shows `prompt` on stderr and reads a line from stdin (without its line ending).
pub fn read_line(prompt: &str) -> std::io::Result<String> {
    eprint!("{prompt}");
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// Reads a line from the terminal on stdin without echoing it. Echo is turned off *before*
/// the prompt is shown, so nothing typed after the prompt appears can be echoed.
pub fn read_hidden(prompt: &str) -> std::io::Result<String> {
    let fd = libc::STDIN_FILENO;
    // SAFETY: termios is plain data; tcgetattr fills it for a terminal file descriptor.
    let mut original: libc::termios = unsafe { std::mem::zeroed() };
    if unsafe { libc::tcgetattr(fd, &mut original) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut hidden = original;
    hidden.c_lflag &= !libc::ECHO;
    hidden.c_lflag |= libc::ECHONL;
    // SAFETY: a valid termios for the same descriptor.
    if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &hidden) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let read = read_line(prompt);
    // SAFETY: restores the settings read above.
    unsafe { libc::tcsetattr(fd, libc::TCSANOW, &original) };
    read
}

/// Asks a yes/no question on the terminal; without one the answer is no, and `refusal` says
/// how to confirm otherwise.
pub fn confirm(question: &str, refusal: &str) -> bool {
    if !interactive() {
        eprintln!("{question}\n{refusal}");
        return false;
    }
    matches!(read_line(&format!("{question} [y/N] ")).as_deref().map(str::trim), Ok("y" | "Y" | "yes"))
}

/// Longest timeout accepted: anything longer is surely a slip of the keyboard.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);

/// Reads a timeout such as `30s`, `10m`, `1h30m` or `500ms` (humantime's format; a bare
/// number is seconds): more than zero, at most a week.
pub fn parse_timeout(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let shown = text.escape_debug();
    let duration = match text.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => humantime::parse_duration(text).map_err(|error| match error {
            humantime::DurationError::NumberOverflow => {
                format!("\"{shown}\" is longer than the longest timeout accepted, 168h (a week)")
            }
            _ => format!("\"{shown}\" is not a duration such as 30s, 10m or 1h"),
        })?,
    };
    if duration.is_zero() {
        return Err("must be longer than zero (e.g. 30s, 10m or 1h)".into());
    }
    if duration > MAX_TIMEOUT {
        return Err(format!("\"{shown}\" is longer than the longest timeout accepted, 168h (a week)"));
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts() {
        assert_eq!(parse_timeout("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_timeout("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_timeout("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_timeout("900"), Ok(Duration::from_secs(900)), "a bare number is seconds");
        assert_eq!(parse_timeout("168h"), Ok(MAX_TIMEOUT));
        assert!(parse_timeout("0s").unwrap_err().contains("longer than zero"));
        assert!(parse_timeout("169h").unwrap_err().contains("168h"));
        assert!(parse_timeout("99999999999999999999h").unwrap_err().contains("168h"));
        assert!(parse_timeout("18446744073709551615").unwrap_err().contains("168h"));
        assert!(parse_timeout("soon").unwrap_err().contains("not a duration"));
        assert!(parse_timeout("").unwrap_err().contains("not a duration"));
    }
}
