//! The `handstamp` binary as a real process: one-shot commands and `serve`.

use super::command;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, mpsc};

/// Runs the binary in `dir` with `stdin` as standard input.
pub fn run(dir: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = command(dir, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// `handstamp user create name --password-stdin`, which must succeed.
pub fn create_user(dir: &Path, name: &str, password: &str) {
    let out = run(
        dir,
        &["user", "create", name, "--password-stdin"],
        &format!("{password}\n"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A `handstamp serve` process and everything it has logged so far.
pub struct Served {
    pub child: Child,
    pub addr: String,
    pub log: Arc<Mutex<String>>,
    pub lines: mpsc::Receiver<String>,
}

pub fn serve(dir: &Path, envs: &[(&str, &str)]) -> Served {
    serve_with(dir, &[], envs)
}

/// `handstamp ARGS... serve --bind 127.0.0.1:0` with `envs`, once it listens.
pub fn serve_with(dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Served {
    let mut cmd = serve_command(dir, args, envs);
    served(cmd.spawn().unwrap())
}

/// The command line of [`serve_with`], not yet started.
pub fn serve_command(dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Command {
    let args = [args, &["serve", "--bind", "127.0.0.1:0"]].concat();
    let mut cmd = command(dir, &args);
    cmd.envs(envs.iter().copied()).stderr(Stdio::piped());
    cmd
}

/// `child`, a `serve_command` started, once it listens.
pub fn served(mut child: Child) -> Served {
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let log = Arc::new(Mutex::new(String::new()));
    let (tx, lines) = mpsc::channel();
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in stderr.lines() {
            let line = line.unwrap();
            sink.lock().unwrap().push_str(&line);
            sink.lock().unwrap().push('\n');
            let _ = tx.send(line);
        }
    });
    let addr = loop {
        let line = lines.recv().expect("server exited before listening");
        let rest = line.split("listening on ").nth(1);
        if let Some(url) = rest {
            let url = url.split(['"', ' ']).next().unwrap();
            break url.split("://").nth(1).unwrap().to_owned();
        }
    };
    Served {
        child,
        addr,
        log,
        lines,
    }
}

impl Served {
    pub fn post(&self, path: &str, body: Value) -> (u16, Value) {
        post(&self.addr, path, body)
    }

    /// `GET path` with `Authorization: Bearer token`: status and JSON body.
    pub fn get_bearer(&self, path: &str, token: &Value) -> (u16, Value) {
        let mut stream = TcpStream::connect(&self.addr).unwrap();
        let token = token.as_str().unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        read_response(&mut stream)
    }

    /// `GET path` with the request id `id`; the answer's status.
    pub fn get_with_request_id(&self, path: &str, id: &str) -> u16 {
        let mut stream = TcpStream::connect(&self.addr).unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: x\r\nX-Request-Id: {id}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        read_response(&mut stream).0
    }

    /// The next log line containing `needle`.
    pub fn wait_for_line(&self, needle: &str) -> String {
        loop {
            let line = self.lines.recv().expect("server exited");
            if line.contains(needle) {
                return line;
            }
        }
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `POST path` of `body` as JSON to the server at `addr`: status and JSON body.
pub fn post(addr: &str, path: &str, body: Value) -> (u16, Value) {
    let mut stream = TcpStream::connect(addr).unwrap();
    let body = body.to_string();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    read_response(&mut stream)
}

/// Reads a whole `Connection: close` response: status and JSON body.
pub fn read_response(stream: &mut TcpStream) -> (u16, Value) {
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let status = raw[9..12].parse().unwrap();
    let body = raw.split_once("\r\n\r\n").unwrap().1;
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}
