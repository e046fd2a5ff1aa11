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
    time::{Duration, SystemTime},
};

use anyhow::{Context, bail};
use base64::Engine;

use crate::tls::ca::{CaError, CertificateAuthority, ServingSpec};

/// CA certificate file name in `--out-dir`.
pub(crate) const CA_CERT_FILE: &str = "ca.crt";
/// CA private key file name in `--out-dir`.
pub(crate) const CA_KEY_FILE: &str = "ca.key";
/// Serving certificate file name, as in a `kubernetes.io/tls` Secret.
pub(crate) const TLS_CERT_FILE: &str = "tls.crt";
/// Serving key file name, as in a `kubernetes.io/tls` Secret.
pub(crate) const TLS_KEY_FILE: &str = "tls.key";

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
    /// Overwrite existing files in --out-dir, with a new CA: the caBundle
    /// of both webhook configurations must then be updated too.
    #[arg(long)]
    pub force: bool,
    /// Issue a new serving certificate from the CA already in --out-dir
    /// (ca.crt, ca.key) and replace only tls.crt and tls.key: the caBundle
    /// the apiserver trusts stays valid.
    #[arg(long, conflicts_with = "force")]
    pub renew: bool,
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
    pub(crate) ca_key_pem: String,
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
pub(crate) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    run_to(args, &mut std::io::stdout().lock())
}

/// [`run`] with stdout as a parameter, so tests can check it holds only the
/// caBundle.
fn run_to(args: &Args, stdout: &mut impl Write) -> anyhow::Result<ExitCode> {
    let dir = &args.out_dir;
    if args.renew {
        return renew(args, stdout);
    }
    if args.force && dir.join(CA_CERT_FILE).exists() {
        eprintln!(
            "warning: --force makes a new CA. Put the new caBundle (stdout) into both webhook \
             configurations, or the apiserver can no longer verify the webhook; \
             --renew issues a new serving certificate from the existing CA instead"
        );
    }
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

/// How far ahead a CA's expiry is worth a warning.
const CA_WARNING: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// `certs --renew`: a new leaf from the CA in `--out-dir`.
fn renew(args: &Args, stdout: &mut impl Write) -> anyhow::Result<ExitCode> {
    let dir = &args.out_dir;
    let read = |name: &str| {
        let path = dir.join(name);
        fs::read_to_string(&path).with_context(|| {
            format!(
                "reading {} (--renew needs the CA that certs wrote before)",
                path.display()
            )
        })
    };
    let ca = CertificateAuthority::from_pem(&read(CA_CERT_FILE)?, &read(CA_KEY_FILE)?)
        .context("loading the CA")?;
    let now = SystemTime::now();
    let left = ca.not_after().duration_since(now).unwrap_or_default();
    if left.is_zero() {
        bail!(
            "the CA in {} has expired; make a new one with --force and update the caBundle",
            dir.display()
        );
    }
    let days_left = left.as_secs() / 86_400;
    if left < CA_WARNING || days_left < u64::from(args.days) {
        eprintln!(
            "warning: the CA expires in {days_left} days; the new certificate ends with it. \
             Plan a new CA (--force) and a caBundle update before then"
        );
    }
    let serving = ca.issue(&args.serving_spec())?;
    write_file(&dir.join(TLS_KEY_FILE), &serving.key_pem, 0o600, true)?;
    write_file(&dir.join(TLS_CERT_FILE), &serving.cert_pem, 0o644, true)?;
    eprintln!(
        "wrote {dir}/{{{TLS_CERT_FILE},{TLS_KEY_FILE}}} from the existing CA; the caBundle (stdout) is unchanged",
        dir = dir.display()
    );
    writeln!(stdout, "{}", ca.ca_bundle()).context("writing the caBundle to stdout")?;
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
    fn renew_keeps_the_ca_and_the_new_leaf_verifies_against_it() {
        let dir = tempfile::tempdir().unwrap();
        let args = Args {
            out_dir: dir.path().join("certs"),
            ..Args::default()
        };
        let mut first = Vec::new();
        run_to(&args, &mut first).unwrap();
        let ca_before = fs::read(args.out_dir.join(CA_CERT_FILE)).unwrap();
        let leaf_before = fs::read(args.out_dir.join(TLS_CERT_FILE)).unwrap();
        let renew = Args {
            renew: true,
            ..args.clone()
        };
        let mut second = Vec::new();
        run_to(&renew, &mut second).unwrap();
        assert_eq!(first, second, "the caBundle is unchanged");
        assert_eq!(
            fs::read(args.out_dir.join(CA_CERT_FILE)).unwrap(),
            ca_before
        );
        let leaf_after = fs::read(args.out_dir.join(TLS_CERT_FILE)).unwrap();
        assert_ne!(leaf_after, leaf_before);
        // The renewed leaf is served, and chains to the unchanged CA.
        let store =
            crate::tls::CertStore::load(crate::tls::CertPaths::in_dir(&args.out_dir)).unwrap();
        let bundle = base64::engine::general_purpose::STANDARD
            .decode(String::from_utf8(first).unwrap().trim())
            .unwrap();
        crate::tls::bundle::verify(&store.current_chain(), &bundle, "127.0.0.1").unwrap();
        // Without a CA there is nothing to renew from.
        let empty = Args {
            out_dir: dir.path().join("none"),
            renew: true,
            ..Args::default()
        };
        let err = run_to(&empty, &mut Vec::new()).unwrap_err().to_string();
        assert!(err.contains("--renew needs the CA"), "{err}");
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
