//! `scale-governor certs`: a CA and a serving certificate for the webhook.
//!
//! For local runs and clusters without cert-manager. It prints only the
//! base64 `caBundle` on stdout, so `CA=$(scale-governor certs ...)` works;
//! progress goes to stderr. [`generate`] mints the same certificates in
//! memory; [`crate::tls::ca`] does the actual issuing.

use std::{
    fmt,
    fs::{self, OpenOptions, Permissions},
    io::Write,
    net::IpAddr,
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Context, bail};
use base64::Engine;

use crate::tls::ca::{CaError, CertificateAuthority, ServingSpec};

/// CA certificate file name in `--out-dir`.
pub const CA_CERT_FILE: &str = "ca.crt";
/// CA private key file name in `--out-dir`.
pub const CA_KEY_FILE: &str = "ca.key";
/// Serving certificate file name, as in a `kubernetes.io/tls` Secret.
pub const TLS_CERT_FILE: &str = "tls.crt";
/// Serving key file name, as in a `kubernetes.io/tls` Secret.
pub const TLS_KEY_FILE: &str = "tls.key";

/// Options of `scale-governor certs`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Directory for ca.crt, ca.key, tls.crt and tls.key (created if absent).
    #[arg(long, value_name = "DIR", default_value = "certs")]
    pub out_dir: PathBuf,
    /// Name of the webhook's Service; the DNS SANs are derived from it.
    #[arg(long, value_name = "NAME", default_value = "scale-governor")]
    pub service: String,
    /// Namespace of the webhook's Service.
    #[arg(long, value_name = "NAMESPACE", default_value = "scale-governor")]
    pub namespace: String,
    /// IP SAN; repeat for several. Any --ip replaces the default. Go ignores
    /// the CN, so `clientConfig.url: https://127.0.0.1:PORT` needs an IP SAN.
    #[arg(long = "ip", value_name = "IP", default_value = "127.0.0.1")]
    pub ip: Vec<IpAddr>,
    /// Extra DNS SAN; repeat for several.
    #[arg(long = "dns", value_name = "NAME")]
    pub dns: Vec<String>,
    /// Validity of both certificates, in days.
    #[arg(long, value_name = "DAYS", default_value_t = 365,
          value_parser = clap::value_parser!(u32).range(1..=36500))]
    pub days: u32,
    /// Overwrite existing files in --out-dir.
    #[arg(long)]
    pub force: bool,
}

impl Default for Args {
    /// The command-line defaults, so tests state only what they change.
    fn default() -> Self {
        #[derive(clap::Parser)]
        struct Defaults {
            #[command(flatten)]
            args: Args,
        }
        <Defaults as clap::Parser>::parse_from(["certs"]).args
    }
}

impl Args {
    /// What the serving certificate is for: [`ServingSpec::for_service`]
    /// with `--service`, `--namespace`, `--dns`, `--ip` and `--days`.
    pub fn serving_spec(&self) -> ServingSpec {
        ServingSpec::for_service(
            &self.service,
            &self.namespace,
            &self.dns,
            self.ip.clone(),
            self.days,
        )
    }
}

/// A CA and a serving certificate it signed, all PEM.
#[derive(Clone)]
pub struct Generated {
    /// CA certificate: the webhook configuration's `caBundle`, before base64.
    pub ca_cert_pem: String,
    /// CA private key; needed only to issue more certificates.
    pub ca_key_pem: String,
    /// Serving certificate (`tls.crt`).
    pub cert_pem: String,
    /// Serving private key (`tls.key`), PKCS#8.
    pub key_pem: String,
}

impl Generated {
    /// The `caBundle` value: base64 of the CA certificate's PEM.
    pub fn ca_bundle(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.ca_cert_pem)
    }
}

impl fmt::Debug for Generated {
    // Keys stay out of logs and test failure output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Generated")
            .field("ca_cert_pem", &self.ca_cert_pem)
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

/// Mints a CA and a serving certificate for `args` in memory; touches no
/// files (`out_dir` and `force` are ignored).
pub fn generate(args: &Args) -> Result<Generated, CaError> {
    let ca = CertificateAuthority::new(args.days)?;
    let serving = ca.issue(&args.serving_spec())?;
    Ok(Generated {
        ca_cert_pem: ca.cert_pem(),
        ca_key_pem: ca.key_pem(),
        cert_pem: serving.cert_pem,
        key_pem: serving.key_pem,
    })
}

/// Runs `scale-governor certs`: generates, writes the four files (keys mode
/// 0600) and prints the base64 `caBundle` on stdout.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    run_to(args, &mut std::io::stdout().lock())
}

/// [`run`] with stdout as a parameter, so tests can check it holds only the
/// caBundle.
fn run_to(args: &Args, stdout: &mut impl Write) -> anyhow::Result<ExitCode> {
    let dir = &args.out_dir;
    if !args.force {
        let existing: Vec<String> = [CA_CERT_FILE, CA_KEY_FILE, TLS_CERT_FILE, TLS_KEY_FILE]
            .iter()
            .map(|f| dir.join(f))
            .filter(|p| p.symlink_metadata().is_ok())
            .map(|p| p.display().to_string())
            .collect();
        if !existing.is_empty() {
            bail!(
                "refusing to overwrite {}; pass --force to replace",
                existing.join(", ")
            );
        }
    }
    let generated = generate(args)?;
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let files = [
        (CA_KEY_FILE, &generated.ca_key_pem, 0o600),
        (CA_CERT_FILE, &generated.ca_cert_pem, 0o644),
        (TLS_KEY_FILE, &generated.key_pem, 0o600),
        (TLS_CERT_FILE, &generated.cert_pem, 0o644),
    ];
    for (name, pem, mode) in files {
        write_file(&dir.join(name), pem, mode, args.force)?;
    }
    eprintln!(
        "wrote {dir}/{{{CA_CERT_FILE},{CA_KEY_FILE},{TLS_CERT_FILE},{TLS_KEY_FILE}}}, \
         valid {days} days, for DNS {dns} and IP {ips}; caBundle on stdout",
        dir = dir.display(),
        days = args.days,
        dns = args.serving_spec().dns_names.join(","),
        ips = args
            .ip
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(","),
    );
    writeln!(stdout, "{}", generated.ca_bundle()).context("writing the caBundle to stdout")?;
    Ok(ExitCode::SUCCESS)
}

fn write_file(path: &Path, contents: &str, mode: u32, overwrite: bool) -> anyhow::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).mode(mode);
    if overwrite {
        options.create(true).truncate(true);
    } else {
        // Also catches a file created since the up-front check.
        options.create_new(true);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    // `mode` applies only to new files; an overwritten key must not stay
    // world-readable.
    file.set_permissions(Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", path.display()))?;
    file.write_all(contents.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    #[test]
    fn the_spec_names_the_service_every_way_it_is_reached() {
        let args = Args {
            dns: vec!["governor.example.com".into(), "localhost".into()],
            ..Args::default()
        };
        let spec = args.serving_spec();
        assert_eq!(
            spec.dns_names,
            [
                "scale-governor",
                "scale-governor.scale-governor",
                "scale-governor.scale-governor.svc",
                "scale-governor.scale-governor.svc.cluster.local",
                "localhost",
                "governor.example.com",
            ]
        );
        assert_eq!(spec.common_name, "scale-governor.scale-governor.svc");
        assert_eq!(spec.ips, [IpAddr::from(Ipv4Addr::LOCALHOST)]);
        assert_eq!(spec.days, 365);
    }

    #[test]
    fn any_ip_flag_replaces_the_default() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: Args,
        }
        let parse = |argv: &[&str]| <Cli as clap::Parser>::try_parse_from(argv).map(|c| c.args);
        let args = parse(&["certs", "--ip", "10.0.0.1", "--ip", "::1"]).unwrap();
        let want: [IpAddr; 2] = ["10.0.0.1".parse().unwrap(), "::1".parse().unwrap()];
        assert_eq!(args.ip, want);
        assert!(parse(&["certs", "--days", "0"]).is_err());
    }

    #[test]
    fn run_writes_private_keys_and_refuses_to_overwrite_without_force() {
        let dir = tempfile::tempdir().unwrap();
        let args = Args {
            out_dir: dir.path().join("certs"),
            ..Args::default()
        };
        let mut stdout = Vec::new();
        assert_eq!(run_to(&args, &mut stdout).unwrap(), ExitCode::SUCCESS);
        // Only the caBundle, so `CA=$(scale-governor certs)` captures exactly it.
        let ca_pem = fs::read(args.out_dir.join(CA_CERT_FILE)).unwrap();
        let bundle = base64::engine::general_purpose::STANDARD.encode(&ca_pem);
        assert_eq!(String::from_utf8(stdout).unwrap(), format!("{bundle}\n"));
        for (file, mode) in [
            (CA_KEY_FILE, 0o600),
            (TLS_KEY_FILE, 0o600),
            (CA_CERT_FILE, 0o644),
            (TLS_CERT_FILE, 0o644),
        ] {
            let meta = fs::metadata(args.out_dir.join(file)).unwrap();
            assert_eq!(meta.permissions().mode() & 0o777, mode, "{file}");
        }
        // What was written is a usable serving pair.
        crate::tls::CertStore::load(crate::tls::CertPaths::in_dir(&args.out_dir)).unwrap();

        let first = fs::read(args.out_dir.join(TLS_KEY_FILE)).unwrap();
        let err = run_to(&args, &mut Vec::new()).unwrap_err().to_string();
        assert!(err.contains("--force"), "{err}");
        assert_eq!(fs::read(args.out_dir.join(TLS_KEY_FILE)).unwrap(), first);

        // A key left world-readable by someone else is tightened on overwrite.
        let key = args.out_dir.join(TLS_KEY_FILE);
        fs::set_permissions(&key, Permissions::from_mode(0o644)).unwrap();
        let forced = Args {
            force: true,
            ..args.clone()
        };
        run_to(&forced, &mut Vec::new()).unwrap();
        assert_ne!(fs::read(&key).unwrap(), first);
        assert_eq!(
            fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}
