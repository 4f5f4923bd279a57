//! The failure the init reports when the command cannot be executed: the same exit codes and
//! wording as berth's own executor, built in fixed buffers (no allocator).

/// A bounded byte buffer; what does not fit is dropped.
pub struct Buf<const N: usize> {
    data: [u8; N],
    len: usize,
}

impl<const N: usize> Buf<N> {
    /// An empty buffer.
    pub const fn new() -> Self {
        Buf {
            data: [0; N],
            len: 0,
        }
    }

    /// The bytes so far.
    pub fn bytes(&self) -> &[u8] {
        &self.data[..self.len]
    }

    /// Appends `s`, as much of it as fits.
    pub fn push(&mut self, s: &[u8]) {
        let n = s.len().min(N - self.len);
        self.data[self.len..self.len + n].copy_from_slice(&s[..n]);
        self.len += n;
    }

    /// Appends `s` quoted as a string (`"` and `\` escaped, control bytes as `\u00XX`).
    pub fn push_quoted(&mut self, s: &[u8]) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        self.push(b"\"");
        for &c in s {
            match c {
                b'"' | b'\\' => self.push(&[b'\\', c]),
                b'\n' => self.push(b"\\n"),
                0..0x20 => self.push(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(c >> 4)],
                    HEX[usize::from(c & 15)],
                ]),
                _ => self.push(&[c]),
            }
        }
        self.push(b"\"");
    }

    /// Appends `n` in decimal.
    pub fn push_num(&mut self, n: i32) {
        let mut digits = [0u8; 11];
        let mut i = digits.len();
        let neg = n < 0;
        let mut v = n.unsigned_abs();
        loop {
            i -= 1;
            digits[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        if neg {
            i -= 1;
            digits[i] = b'-';
        }
        self.push(&digits[i..]);
    }
}

impl<const N: usize> Default for Buf<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// Why the command did not run, with its Docker exit code.
pub struct Failure {
    /// 127 when there is no such file, 126 when it cannot be executed.
    pub code: i32,
    /// One line, without a newline.
    pub message: Buf<768>,
}

impl Failure {
    /// The report berth's executor reads: `{"code":N,"message":"..."}`.
    pub fn json(&self) -> Buf<1024> {
        let mut b = Buf::new();
        b.push(b"{\"code\":");
        b.push_num(self.code);
        b.push(b",\"message\":");
        b.push_quoted(self.message.bytes());
        b.push(b"}");
        b
    }
}

const ENOENT: i32 = 2;
const EACCES: i32 = 13;

/// The failure of executing `cmd` (the command as given), last tried as `path`, with `errno`;
/// `found` when that file exists (an ENOENT then is its interpreter's).
pub fn exec_failure(cmd: &[u8], path: &[u8], errno: i32, found: bool) -> Failure {
    let mut m = Buf::new();
    m.push(b"exec: ");
    m.push_quoted(cmd);
    let code = match errno {
        ENOENT if !found && !cmd.contains(&b'/') => {
            m.push(b": executable file not found in $PATH");
            127
        }
        ENOENT => {
            m.push(b": stat ");
            m.push(path);
            m.push(b": no such file or directory");
            127
        }
        EACCES => {
            m.push(b": permission denied");
            126
        }
        _ => {
            m.push(b": ");
            let e = syscalls::Errno::new(errno);
            match (e.name(), e.description()) {
                (Some(name), Some(text)) => {
                    m.push(name.as_bytes());
                    m.push(b": ");
                    m.push(text.as_bytes());
                }
                _ => {
                    m.push(b"errno ");
                    m.push_num(errno);
                }
            }
            126
        }
    };
    Failure { code, message: m }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(f: &Failure) -> String {
        String::from_utf8(f.json().bytes().to_vec()).unwrap()
    }

    #[test]
    fn failures_match_berths_executor() {
        let f = exec_failure(b"/bin/run", b"/bin/run", 2, false);
        assert_eq!(
            text(&f),
            r#"{"code":127,"message":"exec: \"/bin/run\": stat /bin/run: no such file or directory"}"#
        );
        let f = exec_failure(b"run", b"/bin/run", 2, false);
        assert_eq!(
            f.message.bytes(),
            b"exec: \"run\": executable file not found in $PATH"
        );
        let f = exec_failure(b"run", b"/bin/run", 2, true);
        assert_eq!(
            (f.code, f.message.bytes()),
            (
                127,
                b"exec: \"run\": stat /bin/run: no such file or directory".as_slice()
            )
        );
        assert_eq!(exec_failure(b"x", b"x", 13, true).code, 126);
        let f = exec_failure(b"x", b"x", 8, true);
        assert_eq!(
            (f.code, f.message.bytes()),
            (126, b"exec: \"x\": ENOEXEC: Exec format error".as_slice())
        );
        let f = exec_failure(b"x", b"x", 4000, true);
        assert_eq!(f.message.bytes(), b"exec: \"x\": errno 4000");
    }

    #[test]
    fn quoting_escapes_and_truncates() {
        let mut b = Buf::<12>::new();
        b.push_quoted(b"a\"\\\n\x01");
        assert_eq!(b.bytes(), b"\"a\\\"\\\\\\n\\u00");
        let mut n = Buf::<16>::new();
        n.push_num(-120);
        n.push_num(0);
        assert_eq!(n.bytes(), b"-1200");
    }
}
