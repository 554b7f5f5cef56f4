//! The hub's configuration file: TOML, one key per `serve` flag (its long name, `-` or `_`).
//!
//! Layering, strongest first: command-line flags, then `SHANGLIANG_*` environment variables,
//! then the file (`serve --config FILE`, env `SHANGLIANG_CONFIG`), then the built-in defaults.
//! The file is not a second schema: its keys *are* the `serve` command's flags, read off the
//! clap definition, so a new flag is a new key with nothing else to change, and
//! [`example`] prints every key with its help text, environment variable and default.
//!
//! How: [`expand_args`] turns each key of the file into `--key value` inserted into the
//! command line before the user's own flags, unless the user gave that flag or its
//! environment variable is set; clap then parses (and checks) everything as usual. The keys are
//! checked against the flags first ([`check`]), with line numbers.
//!
//! (Hand-written rather than figment: the keys, types, environment variables and defaults
//! already live in the clap definition, and this way there is exactly one of each.)

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::Path;

/// Flags that are not keys of the file.
const NOT_KEYS: &[&str] = &["config", "help", "version"];

/// One problem of a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line of the key (0: the whole file).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line > 0 { write!(f, "line {}: {}", self.line, self.message) } else { f.write_str(&self.message) }
    }
}

/// The `serve` subcommand of `cli`.
fn serve_command(cli: &clap::Command) -> clap::Command {
    cli.find_subcommand("serve").expect("the CLI has a serve command").clone()
}

fn key_arg<'a>(serve: &'a clap::Command, key: &str) -> Option<&'a clap::Arg> {
    let long = key.replace('_', "-");
    serve.get_arguments().find(|a| a.get_long() == Some(long.as_str()) && !NOT_KEYS.contains(&long.as_str()))
}

/// The line a top-level key is on (first match), for messages.
fn line_of(text: &str, key: &str) -> usize {
    let alt = key.replace('_', "-");
    text.lines()
        .position(|l| {
            let l = l.trim_start();
            [key, alt.as_str()].iter().any(|k| l.strip_prefix(k).is_some_and(|rest| rest.trim_start().starts_with('=')))
        })
        .map_or(0, |i| i + 1)
}

/// A TOML value as the command-line value(s) of a flag; `None` for `false`.
fn to_cli_values(v: &toml::Value) -> Result<Option<Vec<String>>, String> {
    Ok(Some(match v {
        toml::Value::Boolean(true) => Vec::new(),
        toml::Value::Boolean(false) => return Ok(None),
        toml::Value::String(s) => vec![s.clone()],
        toml::Value::Integer(i) => vec![i.to_string()],
        toml::Value::Float(f) => vec![f.to_string()],
        toml::Value::Array(items) => items
            .iter()
            .map(|i| match i {
                toml::Value::String(s) => Ok(s.clone()),
                toml::Value::Integer(n) => Ok(n.to_string()),
                other => Err(format!("an array of strings or numbers, not of {}", other.type_str())),
            })
            .collect::<Result<_, _>>()?,
        other => return Err(format!("a string, number, boolean or array, not a {}", other.type_str())),
    }))
}

/// The `--flag value…` arguments of one key.
fn key_args(arg: &clap::Arg, v: &toml::Value) -> Result<Vec<String>, String> {
    let long = format!("--{}", arg.get_long().expect("keys are long flags"));
    let takes_value = arg.get_action().takes_values();
    let Some(values) = to_cli_values(v)? else {
        return if takes_value { Err("a value, not false".into()) } else { Ok(Vec::new()) };
    };
    match (takes_value, values.is_empty()) {
        (false, true) => Ok(vec![long]),
        (false, false) => Err("true or false".into()),
        (true, true) => Err("a value, not true".into()),
        // A list: one flag with the values joined by the flag's delimiter, else the flag repeated.
        (true, false) => match arg.get_value_delimiter() {
            Some(d) if values.len() > 1 => Ok(vec![long, values.join(&d.to_string())]),
            _ => Ok(values.into_iter().flat_map(|val| [long.clone(), val]).collect()),
        },
    }
}

fn parse(text: &str) -> Result<toml::Table, Problem> {
    text.parse::<toml::Table>().map_err(|e| {
        let line = e.span().map_or(0, |s| text[..s.start.min(text.len())].lines().count().max(1));
        Problem { line, message: format!("not valid TOML: {}", e.message()) }
    })
}

/// Checks a configuration file against the `serve` flags of `cli`: TOML syntax, unknown keys,
/// values of the wrong type or that the flag's parser refuses. Every problem, with its line.
pub fn check(cli: &clap::Command, text: &str) -> Vec<Problem> {
    let table = match parse(text) {
        Ok(t) => t,
        Err(p) => return vec![p],
    };
    let serve = serve_command(cli);
    let mut problems = Vec::new();
    for (key, value) in &table {
        let line = line_of(text, key);
        let Some(arg) = key_arg(&serve, key) else {
            problems.push(Problem { line, message: format!("unknown key `{key}` (`shangliang config example` lists the keys)") });
            continue;
        };
        let args = match key_args(arg, value) {
            Ok(a) => a,
            Err(want) => {
                problems.push(Problem { line, message: format!("`{key}` wants {want}") });
                continue;
            }
        };
        // The flag's own parser decides (clap's message names the flag and the value).
        let argv = std::iter::once("serve".to_string()).chain(args);
        if let Err(e) = serve.clone().try_get_matches_from(argv) {
            let msg = e.render().to_string();
            let first = msg.lines().next().unwrap_or("invalid value").trim_start_matches("error: ");
            // Another flag being required (e.g. --nats with --database) is not this key's problem.
            if e.kind() != clap::error::ErrorKind::MissingRequiredArgument {
                problems.push(Problem { line, message: format!("`{key}`: {first}") });
            }
        }
    }
    problems.sort_by_key(|p| p.line);
    problems
}

/// The environment variable of a `serve` flag: its own (`env = …` in the CLI), else
/// `SHANGLIANG_` and the key in capitals (`comments_per_minute` → `SHANGLIANG_COMMENTS_PER_MINUTE`).
pub fn env_name(arg: &clap::Arg) -> Option<String> {
    if let Some(e) = arg.get_env() {
        return Some(e.to_string_lossy().into_owned());
    }
    let long = arg.get_long()?;
    (!NOT_KEYS.contains(&long)).then(|| format!("SHANGLIANG_{}", long.replace('-', "_").to_uppercase()))
}

/// [`expand_with`] with the process's environment.
pub fn expand_args(cli: &clap::Command, args: impl IntoIterator<Item = OsString>) -> Result<Vec<OsString>, String> {
    expand_with(cli, args, |k| std::env::var_os(k))
}

/// For `serve`: inserts into `args`, before the user's own flags, the flags that come from
/// environment variables clap does not read itself (flags without `env = …`), and those of the
/// file of `--config FILE` (or env `SHANGLIANG_CONFIG`) that neither the command line nor the
/// environment sets. Other commands' arguments are returned unchanged.
pub fn expand_with(
    cli: &clap::Command,
    args: impl IntoIterator<Item = OsString>,
    env: impl Fn(&str) -> Option<OsString>,
) -> Result<Vec<OsString>, String> {
    let args: Vec<OsString> = args.into_iter().collect();
    let Some(serve_at) = args.iter().position(|a| a == "serve") else { return Ok(args) };
    let user = &args[serve_at + 1..];
    let mut file = None;
    for (i, a) in user.iter().enumerate() {
        let s = a.to_string_lossy();
        if let Some(f) = s.strip_prefix("--config=") {
            file = Some(OsString::from(f));
        } else if s == "--config" {
            file = user.get(i + 1).cloned();
        }
    }
    let serve = serve_command(cli);
    let given = |long: &str| {
        user.iter().any(|a| {
            let s = a.to_string_lossy();
            s == format!("--{long}") || s.starts_with(&format!("--{long}="))
        })
    };
    let mut inserted: Vec<OsString> = Vec::new();
    let mut from_env = std::collections::HashSet::new();
    // The environment, for the flags clap has no `env` for.
    for arg in serve.get_arguments() {
        let (Some(long), Some(name)) = (arg.get_long(), env_name(arg)) else { continue };
        let Some(value) = env(&name) else { continue };
        from_env.insert(long.to_string());
        if arg.get_env().is_some() || given(long) {
            continue;
        }
        let value = value.to_string_lossy().into_owned();
        if arg.get_action().takes_values() {
            inserted.extend([OsString::from(format!("--{long}")), OsString::from(value)]);
        } else {
            match value.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => inserted.push(OsString::from(format!("--{long}"))),
                "" | "0" | "false" | "no" | "off" => {}
                _ => return Err(format!("{name}={value}: want true or false")),
            }
        }
    }
    if let Some(file) = file.or_else(|| env("SHANGLIANG_CONFIG")) {
        let path = Path::new(&file);
        let text = std::fs::read_to_string(path).map_err(|e| format!("--config {}: {e}", path.display()))?;
        let problems = check(cli, &text);
        if !problems.is_empty() {
            let list: Vec<String> = problems.iter().map(|p| format!("  {}: {p}", path.display())).collect();
            return Err(format!("the configuration file has problems:\n{}", list.join("\n")));
        }
        let table = parse(&text).map_err(|p| p.to_string())?;
        for (key, value) in &table {
            let arg = key_arg(&serve, key).expect("checked");
            let long = arg.get_long().expect("keys are long flags");
            if given(long) || from_env.contains(long) {
                continue;
            }
            inserted.extend(key_args(arg, value).expect("checked").into_iter().map(OsString::from));
        }
    }
    let mut out = args[..=serve_at].to_vec();
    out.extend(inserted);
    out.extend_from_slice(user);
    Ok(out)
}

/// A documented configuration file with every key at its default (commented out where there
/// is no default), generated from the `serve` flags of `cli`.
pub fn example(cli: &clap::Command) -> String {
    let serve = serve_command(cli);
    let mut out = String::from(
        "# shangliang.toml: the hub's configuration (`shangliang serve --config shangliang.toml`).\n\
         # Every key is a `serve` flag; command-line flags win over SHANGLIANG_* environment\n\
         # variables, which win over this file, which wins over the defaults shown here.\n\
         # Check a file with `shangliang config check FILE`.\n",
    );
    for arg in serve.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if NOT_KEYS.contains(&long) {
            continue;
        }
        let key = long.replace('-', "_");
        out.push('\n');
        let help = arg.get_long_help().or(arg.get_help()).map(|h| h.to_string()).unwrap_or_default();
        for line in help.lines() {
            let _ = writeln!(out, "# {line}");
        }
        if let Some(env) = env_name(arg) {
            let _ = writeln!(out, "# env: {env}");
        }
        let takes_value = arg.get_action().takes_values();
        let defaults: Vec<String> = arg.get_default_values().iter().map(|d| d.to_string_lossy().into_owned()).collect();
        if !takes_value {
            let _ = writeln!(out, "{key} = false");
        } else if let Some(d) = defaults.first() {
            let value = if d.parse::<i64>().is_ok() { d.clone() } else { format!("{d:?}") };
            let _ = writeln!(out, "{key} = {value}");
        } else {
            let _ = writeln!(out, "# {key} =   (no default)");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli() -> clap::Command {
        clap::Command::new("shangliang").subcommand(
            clap::Command::new("serve")
                .arg(clap::Arg::new("listen").long("listen").default_value("127.0.0.1:8080").env("SHANGLIANG_TEST_LISTEN").value_parser(clap::value_parser!(std::net::SocketAddr)))
                .arg(clap::Arg::new("flush_ms").long("flush-ms").default_value("20").value_parser(clap::value_parser!(u64)))
                .arg(clap::Arg::new("no_demo").long("no-demo").action(clap::ArgAction::SetTrue))
                .arg(clap::Arg::new("nodes").long("nodes").value_delimiter(','))
                .arg(clap::Arg::new("config").long("config")),
        )
    }

    fn args(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn check_names_unknown_keys_and_bad_values_with_their_lines() {
        let text = "listen = \"127.0.0.1:9000\"\n\nflush_ms = \"soon\"\nlistne = \"x\"\nno-demo = 3\n";
        let problems = check(&cli(), text);
        let lines: Vec<usize> = problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, vec![3, 4, 5], "{problems:?}");
        assert!(problems[0].message.contains("flush_ms") && problems[0].message.contains("soon"), "{problems:?}");
        assert!(problems[1].message.contains("unknown key `listne`"), "{problems:?}");
        assert!(problems[2].message.contains("true or false"), "{problems:?}");
    }

    #[test]
    fn check_reports_a_syntax_error_with_its_line() {
        let problems = check(&cli(), "listen = \"127.0.0.1:9000\"\nflush_ms = = 3\n");
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].line, 2, "{problems:?}");
    }

    #[test]
    fn a_good_file_and_the_example_have_no_problems() {
        assert!(check(&cli(), "listen = \"0.0.0.0:80\"\nno_demo = true\nnodes = [\"http://a\", \"http://b\"]\n").is_empty());
        let ex = example(&cli());
        assert!(ex.contains("listen = \"127.0.0.1:8080\"") && ex.contains("flush_ms = 20") && ex.contains("# env: SHANGLIANG_TEST_LISTEN"), "{ex}");
        assert!(check(&cli(), &ex).is_empty(), "{:?}", check(&cli(), &ex));
    }

    #[test]
    fn file_keys_come_under_the_users_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.toml");
        std::fs::write(&path, "flush_ms = 50\nno_demo = true\nnodes = [\"http://a\", \"http://b\"]\n").unwrap();
        let p = path.to_str().unwrap();
        let out = expand_args(&cli(), args(&["shangliang", "serve", "--config", p, "--flush-ms", "7"])).unwrap();
        let m = cli().try_get_matches_from(out).unwrap();
        let s = m.subcommand_matches("serve").unwrap();
        assert_eq!(s.get_one::<u64>("flush_ms"), Some(&7), "the command line wins");
        assert!(s.get_flag("no_demo"), "the file fills in the rest");
        let nodes: Vec<&String> = s.get_many::<String>("nodes").unwrap().collect();
        assert_eq!(nodes, ["http://a", "http://b"]);
    }

    #[test]
    fn the_command_line_beats_the_environment_which_beats_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:1111\"\nflush_ms = 50\nno_demo = true\n").unwrap();
        let env = |k: &str| match k {
            "SHANGLIANG_TEST_LISTEN" => Some(OsString::from("127.0.0.1:2222")),
            "SHANGLIANG_FLUSH_MS" => Some(OsString::from("60")),
            "SHANGLIANG_CONFIG" => Some(path.clone().into_os_string()),
            _ => None,
        };
        let matches = |argv: &[&str]| {
            let out = expand_with(&cli(), args(argv), env).unwrap();
            // (clap reads SHANGLIANG_TEST_LISTEN itself; the test gives it on the command line
            // where clap would find it in the environment.)
            let out = if argv.contains(&"--listen") { out } else { [out, args(&["--listen", "127.0.0.1:2222"])].concat() };
            cli().try_get_matches_from(out).unwrap()
        };
        let m = matches(&["shangliang", "serve"]);
        let s = m.subcommand_matches("serve").unwrap();
        assert_eq!(s.get_one::<u64>("flush_ms"), Some(&60), "the derived SHANGLIANG_FLUSH_MS beats the file");
        assert!(s.get_flag("no_demo"), "the file (found by SHANGLIANG_CONFIG) fills in the rest");
        let m = matches(&["shangliang", "serve", "--flush-ms", "7", "--listen", "127.0.0.1:3333"]);
        let s = m.subcommand_matches("serve").unwrap();
        assert_eq!(s.get_one::<u64>("flush_ms"), Some(&7), "the command line beats the environment");
        assert_eq!(s.get_one::<std::net::SocketAddr>("listen").unwrap().port(), 3333);
        // The file's listen is not inserted while the flag's own environment variable is set.
        let out = expand_with(&cli(), args(&["shangliang", "serve"]), env).unwrap();
        assert!(!out.iter().any(|a| a == "127.0.0.1:1111"), "{out:?}");
    }

    #[test]
    fn other_commands_and_no_file_leave_the_arguments_alone() {
        let a = args(&["shangliang", "token", "--activity", "demo"]);
        assert_eq!(expand_args(&cli(), a.clone()).unwrap(), a);
    }

    #[test]
    fn a_bad_file_is_refused_before_the_hub_starts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.toml");
        std::fs::write(&path, "colour = \"red\"\n").unwrap();
        let err = expand_args(&cli(), args(&["shangliang", "serve", "--config", path.to_str().unwrap()])).unwrap_err();
        assert!(err.contains("line 1: unknown key `colour`"), "{err}");
    }
}
