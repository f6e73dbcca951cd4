//! The provider installed the ways users install it, with real `terraform init` and no dev
//! overrides: from a provider registry (service discovery, the versions and download
//! endpoints, SHA256SUMS and its GnuPG signature), from a network mirror laid out as
//! `terraform providers mirror` writes it, and from a filesystem mirror (`make install`).
//!
//! The packages are what `scripts/release` puts in `dist/`, signed with a throwaway key;
//! the binary in them is the debug build (the release build takes minutes and is checked for
//! reproducibility by `scripts/release-check`). The registry and the network mirror are
//! served over HTTPS by a small server here, trusted by Terraform through `SSL_CERT_FILE`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};

use acceptance_tests::{
    process_scratch, provider_version, workspace_binary, workspace_root, Workdir,
};
use serde_json::{json, Value as Json};

const NAMESPACE: &str = "azure-mig";
const TYPE: &str = "mig";
const PLATFORM: &str = "linux_amd64";

/// What `scripts/release` produced, and the throwaway keys.
struct Release {
    dist: PathBuf,
    /// File name -> SHA-256 (hex), as listed in SHA256SUMS.
    sums: BTreeMap<String, String>,
    /// The `h1:` hash (Terraform's hash of the unpacked package) of this machine's zip.
    h1: String,
    key_id: String,
    public_key: String,
    /// SHA256SUMS signed by a key the registry does not announce.
    wrong_signature: Vec<u8>,
    /// A valid zip with this machine's file name, holding another binary.
    tampered: Vec<u8>,
    ca_pem_file: PathBuf,
    tls: Arc<rustls::ServerConfig>,
}

impl Release {
    fn prefix() -> String {
        format!("terraform-provider-mig_{}", provider_version())
    }

    fn file(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.dist.join(name)).unwrap_or_else(|e| panic!("reading {name}: {e}"))
    }

    fn zip_name(platform: &str) -> String {
        format!("{}_{platform}.zip", Self::prefix())
    }

    fn sums_name() -> String {
        format!("{}_SHA256SUMS", Self::prefix())
    }

    /// Every hash in SHA256SUMS as `zh:`, as the lock file records them from a registry.
    fn signed_hashes(&self) -> BTreeSet<String> {
        self.sums
            .values()
            .map(|hash| format!("zh:{hash}"))
            .collect()
    }

    fn platforms(&self) -> Vec<(String, String)> {
        let prefix = format!("{}_", Self::prefix());
        self.sums
            .keys()
            .filter_map(|name| name.strip_prefix(&prefix)?.strip_suffix(".zip"))
            .map(|platform| {
                let (os, arch) = platform.split_once('_').expect("os_arch");
                (os.to_string(), arch.to_string())
            })
            .collect()
    }
}

fn run(command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("running {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed:\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A new GnuPG home with one RSA signing key and no passphrase; returns its fingerprint.
fn throwaway_key(home: &Path, name: &str) -> String {
    std::fs::create_dir_all(home).expect("GNUPGHOME");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(home, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    }
    let gpg = || {
        let mut command = Command::new("gpg");
        command.env("GNUPGHOME", home).args(["--batch", "--quiet"]);
        command
    };
    run(gpg().args([
        "--pinentry-mode",
        "loopback",
        "--passphrase",
        "",
        "--quick-gen-key",
        &format!("{name} <release-test@azure-mig.invalid>"),
        "rsa2048",
        "sign",
        "never",
    ]));
    let listing = run(gpg().args(["--with-colons", "--list-secret-keys"]));
    listing
        .lines()
        .find_map(|line| line.strip_prefix("fpr:"))
        .and_then(|rest| rest.split(':').find(|field| !field.is_empty()))
        .expect("fingerprint")
        .to_string()
}

fn release() -> &'static Release {
    static RELEASE: OnceLock<Release> = OnceLock::new();
    RELEASE.get_or_init(|| {
        let root = workspace_root();
        run(&mut Command::new(root.join("scripts/ensure-gnupg")));
        let scratch = process_scratch("release");
        let dist = scratch.join("dist");
        let provider = workspace_binary("MIG_PROVIDER_BIN", "terraform-provider-mig");
        let script = root.join("scripts/release");
        // This machine's zip, and two more so the lock file has hashes for other platforms
        // (never installed here, so they hold a stand-in: zipping the debug build takes long).
        let stand_in = scratch.join("stand-in");
        std::fs::write(&stand_in, "not this platform's provider\n").expect("stand-in");
        for (triple, binary) in [
            ("", &provider),
            ("aarch64-apple-darwin", &stand_in),
            ("x86_64-pc-windows-msvc", &stand_in),
        ] {
            run(Command::new(&script)
                .args(["build", triple])
                .env("RELEASE_BINARY", binary)
                .env("DIST", &dist));
        }
        // A well-formed zip of this machine's name holding something else.
        let tampered_dist = scratch.join("tampered");
        run(Command::new(&script)
            .args(["build", ""])
            .env("RELEASE_BINARY", &stand_in)
            .env("DIST", &tampered_dist));
        let tampered = std::fs::read(tampered_dist.join(Release::zip_name(PLATFORM)))
            .expect("tampered zip");
        let home = scratch.join("gnupg");
        let fingerprint = throwaway_key(&home, "mig release test");
        run(Command::new(&script)
            .arg("sign")
            .env("DIST", &dist)
            .env("GNUPGHOME", &home)
            .env("GPG_FINGERPRINT", &fingerprint)
            .env_remove("GPG_PRIVATE_KEY"));
        let public_key = run(Command::new("gpg")
            .env("GNUPGHOME", &home)
            .args(["--batch", "--armor", "--export", &fingerprint]));

        let other_home = scratch.join("gnupg-other");
        let other = throwaway_key(&other_home, "someone else");
        let wrong = scratch.join("wrong.sig");
        run(Command::new("gpg")
            .env("GNUPGHOME", &other_home)
            .args(["--batch", "--yes", "--pinentry-mode", "loopback"])
            .args(["--passphrase", "", "--local-user", &other, "--output"])
            .arg(&wrong)
            .arg("--detach-sign")
            .arg(dist.join(Release::sums_name())));
        for home in [&home, &other_home] {
            let _ = Command::new("gpgconf")
                .env("GNUPGHOME", home)
                .args(["--kill", "all"])
                .status();
        }

        let sums_text = std::fs::read_to_string(dist.join(Release::sums_name())).expect("sums");
        let sums = sums_text
            .lines()
            .map(|line| {
                let (hash, name) = line.split_once("  ").expect("`hash  name` lines");
                (name.to_string(), hash.to_string())
            })
            .collect();

        let h1 = run(Command::new("python3")
            .args([
                "-c",
                "import base64, hashlib, sys, zipfile\n\
                 z = zipfile.ZipFile(sys.argv[1])\n\
                 lines = ''.join(f'{hashlib.sha256(z.read(n)).hexdigest()}  {n}\\n' for n in sorted(z.namelist()))\n\
                 print('h1:' + base64.b64encode(hashlib.sha256(lines.encode()).digest()).decode())\n",
            ])
            .arg(dist.join(Release::zip_name(PLATFORM))))
        .trim()
        .to_string();
        let (ca_pem, tls) = tls();
        let ca_pem_file = scratch.join("ca.pem");
        std::fs::write(&ca_pem_file, ca_pem).expect("write CA");
        Release {
            dist,
            sums,
            h1,
            key_id: fingerprint[fingerprint.len() - 16..].to_string(),
            public_key,
            wrong_signature: std::fs::read(&wrong).expect("wrong signature"),
            tampered,
            ca_pem_file,
            tls,
        }
    })
}

/// A throwaway CA and a certificate for `localhost` signed by it.
fn tls() -> (String, Arc<rustls::ServerConfig>) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "mig install test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA");
    let leaf_key = KeyPair::generate().expect("server key");
    let leaf = CertificateParams::new(vec!["localhost".to_string()])
        .expect("server params")
        .signed_by(&leaf_key, &ca)
        .expect("server certificate");
    let chain = vec![
        rustls::pki_types::CertificateDer::from(leaf.der().to_vec()),
        rustls::pki_types::CertificateDer::from(ca.der().to_vec()),
    ];
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(
        leaf_key.serialize_der(),
    ));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .expect("TLS config");
    (ca.pem(), Arc::new(config))
}

/// Static files over HTTPS on `localhost:{port}`: path -> body. Records every path asked for.
struct Server {
    port: u16,
    files: Arc<Mutex<BTreeMap<String, Vec<u8>>>>,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start(tls: Arc<rustls::ServerConfig>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("address").port();
        let files: Arc<Mutex<BTreeMap<String, Vec<u8>>>> = Arc::default();
        let requests: Arc<Mutex<Vec<String>>> = Arc::default();
        let (served, logged) = (files.clone(), requests.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let acceptor = tokio_rustls::TlsAcceptor::from(tls);
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        continue;
                    };
                    let (acceptor, files, requests) =
                        (acceptor.clone(), served.clone(), logged.clone());
                    tokio::spawn(async move {
                        let _ = serve(acceptor, tcp, files, requests).await;
                    });
                }
            });
        });
        Server {
            port,
            files,
            requests,
        }
    }

    fn base(&self) -> String {
        format!("https://localhost:{}", self.port)
    }

    fn put(&self, path: &str, body: impl Into<Vec<u8>>) {
        self.files
            .lock()
            .unwrap()
            .insert(path.to_string(), body.into());
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

/// One HTTP/1.1 GET per connection (`Connection: close`).
async fn serve(
    acceptor: tokio_rustls::TlsAcceptor,
    tcp: tokio::net::TcpStream,
    files: Arc<Mutex<BTreeMap<String, Vec<u8>>>>,
    requests: Arc<Mutex<Vec<String>>>,
) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = acceptor.accept(tcp).await?;
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head);
    let path = head
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .split('?')
        .next()
        .unwrap_or("/")
        .to_string();
    requests.lock().unwrap().push(path.clone());
    let body = files.lock().unwrap().get(&path).cloned();
    let (status, body) = match body {
        Some(body) => ("200 OK", body),
        None => ("404 Not Found", b"not found".to_vec()),
    };
    let content_type = if path.ends_with(".json") || !path.contains('.') {
        "application/json"
    } else {
        "application/octet-stream"
    };
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    response.extend_from_slice(&body);
    stream.write_all(&response).await?;
    stream.shutdown().await
}

/// A provider registry (protocol v1) for `azure-mig/mig` on `server`, files under
/// `/files/`, signed with the key the download endpoint announces.
fn publish_registry(server: &Server, release: &Release) {
    server.put(
        "/.well-known/terraform.json",
        json!({ "providers.v1": "/v1/providers/" }).to_string(),
    );
    let version = provider_version();
    let platforms: Vec<Json> = release
        .platforms()
        .into_iter()
        .map(|(os, arch)| json!({ "os": os, "arch": arch }))
        .collect();
    server.put(
        &format!("/v1/providers/{NAMESPACE}/{TYPE}/versions"),
        json!({ "versions": [{ "version": version, "protocols": ["6.0"], "platforms": platforms }] })
            .to_string(),
    );
    let sums = Release::sums_name();
    for (os, arch) in release.platforms() {
        let zip = Release::zip_name(&format!("{os}_{arch}"));
        server.put(
            &format!("/v1/providers/{NAMESPACE}/{TYPE}/{version}/download/{os}/{arch}"),
            json!({
                "protocols": ["6.0"],
                "os": os,
                "arch": arch,
                "filename": zip,
                "download_url": format!("{}/files/{zip}", server.base()),
                "shasums_url": format!("{}/files/{sums}", server.base()),
                "shasums_signature_url": format!("{}/files/{sums}.sig", server.base()),
                "shasum": release.sums[&zip],
                "signing_keys": { "gpg_public_keys": [{
                    "key_id": release.key_id,
                    "ascii_armor": release.public_key,
                    "trust_signature": "",
                    "source": "azure-mig",
                    "source_url": null,
                }]},
            })
            .to_string(),
        );
        server.put(&format!("/files/{zip}"), release.file(&zip));
    }
    server.put(&format!("/files/{sums}"), release.file(&sums));
    server.put(
        &format!("/files/{sums}.sig"),
        release.file(&format!("{sums}.sig")),
    );
}

fn config(source: &str) -> String {
    format!(
        r#"terraform {{
  required_providers {{
    mig = {{
      source  = "{source}"
      version = "~> 0.1"
    }}
  }}
}}
"#
    )
}

/// A working directory whose Terraform uses `cli_config` and trusts the test CA.
fn workdir(release: &Release, config_text: &str, cli_config: &str) -> Workdir {
    let mut workdir = Workdir::new(config_text);
    workdir.write("terraform.rc", cli_config);
    let rc = workdir.path().join("terraform.rc");
    workdir
        .env("TF_CLI_CONFIG_FILE", rc.to_str().expect("utf-8 path"))
        .env(
            "SSL_CERT_FILE",
            release.ca_pem_file.to_str().expect("utf-8 path"),
        );
    workdir
}

/// The `hashes` of the lock file's entry for `address`.
fn locked_hashes(workdir: &Workdir, address: &str) -> BTreeSet<String> {
    let lock = std::fs::read_to_string(workdir.path().join(".terraform.lock.hcl"))
        .expect("terraform init writes .terraform.lock.hcl");
    let entry = lock
        .split(&format!("provider \"{address}\""))
        .nth(1)
        .unwrap_or_else(|| panic!("no lock entry for {address}:\n{lock}"));
    let entry = entry.split("\n}").next().unwrap_or_default();
    assert!(
        entry.contains(&format!("version     = \"{}\"", provider_version())),
        "lock entry without version {}:\n{entry}",
        provider_version()
    );
    entry
        .lines()
        .filter_map(|line| {
            let line = line.trim().trim_end_matches(',');
            line.strip_prefix('"')?
                .strip_suffix('"')
                .map(str::to_string)
        })
        .filter(|hash| hash.starts_with("h1:") || hash.starts_with("zh:"))
        .collect()
}

/// `terraform init`, which must install the provider (not find it already there).
fn init(workdir: &Workdir) -> String {
    let output = workdir.init();
    let installed = format!("{NAMESPACE}/{TYPE} v{}", provider_version());
    assert!(
        output
            .stdout
            .lines()
            .any(|line| line.starts_with("- Installed ") && line.contains(&installed)),
        "{}",
        output.all()
    );
    output.stdout
}

/// Terraform's error text on one line (it wraps at 80 columns).
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The same configuration and lock file in a new directory (another machine: nothing
/// installed yet) with `cli_config`; `init` must accept the locked hashes and keep them.
fn second_machine(
    release: &Release,
    config_text: &str,
    cli_config: &str,
    first: &Workdir,
    address: &str,
) {
    let second = workdir(release, config_text, cli_config);
    std::fs::copy(
        first.path().join(".terraform.lock.hcl"),
        second.path().join(".terraform.lock.hcl"),
    )
    .expect("copy lock file");
    let before = locked_hashes(first, address);
    init(&second);
    assert_eq!(locked_hashes(&second, address), before);
}

#[test]
fn registry_install_checks_sha256sums_and_signature() {
    let release = release();
    let server = Server::start(release.tls.clone());
    publish_registry(&server, release);
    let host = format!("localhost:{}", server.port);
    let address = format!("{host}/{NAMESPACE}/{TYPE}");
    let config_text = config(&address);
    let cli_config = "# nothing: the registry is found by service discovery\n";

    let first = workdir(release, &config_text, cli_config);
    let stdout = init(&first);
    assert!(
        stdout.contains(&format!("(self-signed, key ID {})", release.key_id)),
        "{stdout}"
    );
    let requests = server.requests();
    for path in [
        "/.well-known/terraform.json".to_string(),
        format!("/v1/providers/{NAMESPACE}/{TYPE}/versions"),
        format!(
            "/v1/providers/{NAMESPACE}/{TYPE}/{}/download/linux/amd64",
            provider_version()
        ),
        format!("/files/{}", Release::zip_name(PLATFORM)),
        format!("/files/{}", Release::sums_name()),
        format!("/files/{}.sig", Release::sums_name()),
    ] {
        assert!(
            requests.contains(&path),
            "{path} not asked for: {requests:?}"
        );
    }
    let hashes = locked_hashes(&first, &address);
    let zh: BTreeSet<String> = hashes
        .iter()
        .filter(|h| h.starts_with("zh:"))
        .cloned()
        .collect();
    assert_eq!(zh, release.signed_hashes(), "lock file vs SHA256SUMS");
    assert!(hashes.contains(&release.h1), "{hashes:?}");
    first.run_ok(&["providers", "schema", "-json"]);

    second_machine(release, &config_text, cli_config, &first, &address);

    // A tampered zip: the registry still announces the released checksum.
    let zip = Release::zip_name(PLATFORM);
    server.put(&format!("/files/{zip}"), release.tampered.clone());
    let output =
        workdir(release, &config_text, cli_config).run(&["init", "-input=false", "-no-color"]);
    assert!(!output.success, "tampered zip accepted:\n{}", output.all());
    assert!(
        one_line(&output.stderr).contains("archive has incorrect checksum zh:")
            && one_line(&output.stderr).contains(&format!("(expected zh:{})", release.sums[&zip])),
        "tampered zip: {}",
        output.all()
    );
    server.put(&format!("/files/{zip}"), release.file(&zip));

    // SHA256SUMS signed by someone else.
    let sig = format!("/files/{}.sig", Release::sums_name());
    server.put(&sig, release.wrong_signature.clone());
    let output =
        workdir(release, &config_text, cli_config).run(&["init", "-input=false", "-no-color"]);
    assert!(
        !output.success,
        "wrong signature accepted:\n{}",
        output.all()
    );
    assert!(
        one_line(&output.stderr).contains("authentication signature from unknown issuer"),
        "wrong signature: {}",
        output.all()
    );
}

/// The block users write (`source = "azure-mig/mig"`), with the registry's provider service
/// mapped to the local one; then the lock file it writes is accepted by the mirrors.
#[test]
fn registry_block_users_write_and_its_lock_file() {
    let release = release();
    let server = Server::start(release.tls.clone());
    publish_registry(&server, release);
    let address = format!("registry.terraform.io/{NAMESPACE}/{TYPE}");
    let config_text = config(&format!("{NAMESPACE}/{TYPE}"));
    let cli_config = registry_config(&server);
    let first = workdir(release, &config_text, &cli_config);
    init(&first);
    let hashes = locked_hashes(&first, &address);
    let zh: BTreeSet<String> = hashes
        .iter()
        .filter(|h| h.starts_with("zh:"))
        .cloned()
        .collect();
    assert_eq!(zh, release.signed_hashes(), "lock file vs SHA256SUMS");

    let (_mirror_dir, mirror_server) = network_mirror(release, &first);
    second_machine(
        release,
        &config_text,
        &network_mirror_config(&mirror_server),
        &first,
        &address,
    );
    let fs_mirror = filesystem_mirror(&release.file(&Release::zip_name(PLATFORM)));
    second_machine(
        release,
        &config_text,
        &filesystem_mirror_config(fs_mirror.path()),
        &first,
        &address,
    );
}

/// `terraform providers mirror` run against the registry `registry` points at, served over
/// HTTPS; the version file also lists the `zh:` hashes of SHA256SUMS.
fn network_mirror(release: &Release, registry: &Workdir) -> (tempfile::TempDir, Server) {
    let dir = tempfile::Builder::new()
        .prefix("mig-net-mirror-")
        .tempdir()
        .expect("mirror dir");
    registry.run_ok(&[
        "providers",
        "mirror",
        &format!("-platform={PLATFORM}"),
        dir.path().to_str().expect("utf-8 path"),
    ]);
    let server = Server::start(release.tls.clone());
    let base = dir
        .path()
        .join(format!("registry.terraform.io/{NAMESPACE}/{TYPE}"));
    let version_file = base.join(format!("{}.json", provider_version()));
    let mut version: Json = serde_json::from_slice(
        &std::fs::read(&version_file).expect("providers mirror wrote {version}.json"),
    )
    .expect("version JSON");
    let zip = Release::zip_name(PLATFORM);
    assert_eq!(
        version["archives"][PLATFORM]["url"],
        zip.as_str(),
        "{version}"
    );
    let archive = &mut version["archives"][PLATFORM];
    let listed = archive["hashes"].as_array_mut().expect("hashes");
    listed.push(json!(format!("zh:{}", release.sums[&zip])));
    for entry in std::fs::read_dir(&base).expect("mirror listing") {
        let path = entry.expect("entry").path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let body = if path == version_file {
            version.to_string().into_bytes()
        } else {
            std::fs::read(&path).expect("mirror file")
        };
        server.put(
            &format!("/mirror/registry.terraform.io/{NAMESPACE}/{TYPE}/{name}"),
            body,
        );
    }
    (dir, server)
}

/// A CLI configuration that sends `registry.terraform.io`'s provider service to `server`.
fn registry_config(server: &Server) -> String {
    format!(
        "host \"registry.terraform.io\" {{\n  services = {{\n    \"providers.v1\" = \"{}/v1/providers/\"\n  }}\n}}\n",
        server.base()
    )
}

fn network_mirror_config(server: &Server) -> String {
    format!(
        "provider_installation {{\n  network_mirror {{\n    url = \"{}/mirror/\"\n  }}\n}}\n",
        server.base()
    )
}

/// What `make install` makes: the binary from the release zip, unpacked.
fn filesystem_mirror(zip: &[u8]) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("mig-fs-mirror-")
        .tempdir()
        .expect("mirror dir");
    let target = dir.path().join(format!(
        "registry.terraform.io/{NAMESPACE}/{TYPE}/{}/{PLATFORM}",
        provider_version()
    ));
    std::fs::create_dir_all(&target).expect("mirror dir");
    let zip_file = dir.path().join(Release::zip_name(PLATFORM));
    std::fs::write(&zip_file, zip).expect("write zip");
    run(Command::new("python3")
        .args([
            "-c",
            "import sys, zipfile, os\n\
             with zipfile.ZipFile(sys.argv[1]) as z:\n\
             \x20   for info in z.infolist():\n\
             \x20       path = z.extract(info, sys.argv[2])\n\
             \x20       os.chmod(path, info.external_attr >> 16 & 0o777)\n",
        ])
        .arg(&zip_file)
        .arg(&target));
    std::fs::remove_file(&zip_file).expect("remove zip");
    dir
}

fn filesystem_mirror_config(path: &Path) -> String {
    format!(
        "provider_installation {{\n  filesystem_mirror {{\n    path = \"{}\"\n  }}\n}}\n",
        path.display()
    )
}

#[test]
fn network_mirror_install() {
    let release = release();
    let registry = Server::start(release.tls.clone());
    publish_registry(&registry, release);
    let address = format!("registry.terraform.io/{NAMESPACE}/{TYPE}");
    let config_text = config(&format!("{NAMESPACE}/{TYPE}"));
    let source = workdir(release, &config_text, &registry_config(&registry));
    source.init();
    let (_dir, mirror) = network_mirror(release, &source);
    let cli_config = network_mirror_config(&mirror);

    let first = workdir(release, &config_text, &cli_config);
    init(&first);
    let requests = mirror.requests();
    assert!(
        requests
            .iter()
            .any(|path| path.ends_with(&Release::zip_name(PLATFORM))),
        "{requests:?}"
    );
    // A mirror is not signed: Terraform locks the hash of what it installed, which is the
    // package SHA256SUMS vouches for (the registry's lock file is accepted below).
    assert_eq!(
        locked_hashes(&first, &address),
        BTreeSet::from([release.h1.clone()])
    );
    second_machine(release, &config_text, &cli_config, &first, &address);

    // A tampered zip on the mirror does not match the hashes its version file lists.
    let zip = Release::zip_name(PLATFORM);
    mirror.put(
        &format!("/mirror/registry.terraform.io/{NAMESPACE}/{TYPE}/{zip}"),
        release.tampered.clone(),
    );
    let output =
        workdir(release, &config_text, &cli_config).run(&["init", "-input=false", "-no-color"]);
    assert!(!output.success, "tampered zip accepted:\n{}", output.all());
    assert!(
        one_line(&output.stderr)
            .contains("provider package doesn't match the any of the expected checksums"),
        "tampered zip on the mirror: {}",
        output.all()
    );
}

#[test]
fn filesystem_mirror_install() {
    let release = release();
    let mirror = filesystem_mirror(&release.file(&Release::zip_name(PLATFORM)));
    let address = format!("registry.terraform.io/{NAMESPACE}/{TYPE}");
    let config_text = config(&format!("{NAMESPACE}/{TYPE}"));
    let cli_config = filesystem_mirror_config(mirror.path());
    let first = workdir(release, &config_text, &cli_config);
    init(&first);
    assert_eq!(
        locked_hashes(&first, &address),
        BTreeSet::from([release.h1.clone()])
    );
    second_machine(release, &config_text, &cli_config, &first, &address);

    // Another machine whose mirror holds another binary: the lock file refuses it.
    let other_mirror = filesystem_mirror(&release.tampered);
    let other = workdir(
        release,
        &config_text,
        &filesystem_mirror_config(other_mirror.path()),
    );
    std::fs::copy(
        first.path().join(".terraform.lock.hcl"),
        other.path().join(".terraform.lock.hcl"),
    )
    .expect("copy lock file");
    let output = other.run(&["init", "-input=false", "-no-color"]);
    assert!(!output.success, "other binary accepted:\n{}", output.all());
    assert!(
        one_line(&output.stderr).contains(
            "doesn't match any of the checksums previously recorded in the dependency lock file"
        ),
        "other binary: {}",
        output.all()
    );
}
