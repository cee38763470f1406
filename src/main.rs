use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use rollcall::{
    config::Config, connections, mail, operator, server, state::AppState, store::Store, telemetry,
};

#[derive(Parser)]
#[command(
    name = "rollcall",
    version,
    about = "SSO and SCIM identity-provisioning server"
)]
struct Cli {
    /// Configuration file (TOML). Without it, ./rollcall.toml is read if present.
    #[arg(long, short, env = "ROLLCALL_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply migrations and serve HTTP until SIGINT or SIGTERM.
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Create an organization and its first admin, and print a one-time admin API token.
    Bootstrap {
        #[arg(long)]
        org_slug: String,
        #[arg(long)]
        org_name: String,
        #[arg(long)]
        admin_email: String,
        #[arg(long)]
        admin_name: Option<String>,
    },
    /// Email domains of an organization.
    Domain {
        #[command(subcommand)]
        command: DomainCommand,
    },
    /// Copy the SQLite database to FILE while rollcall runs (consistent, online). For
    /// PostgreSQL use pg_dump. Applies no migrations, so it is safe before an upgrade.
    Backup {
        /// The copy to write; it must not exist yet.
        file: PathBuf,
    },
    /// People's accounts.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Set a person's password, e.g. for a bootstrap admin to use the sign-in page. Reads the
    /// password from the first line of standard input, so it stays out of the process list
    /// and shell history. Ends the person's sessions.
    SetPassword {
        #[arg(long)]
        email: String,
    },
}

#[derive(Subcommand)]
enum DomainCommand {
    /// Mark a domain verified for an organization without a DNS check, e.g. when you have
    /// confirmed ownership another way. Claims it first if needed.
    Verify {
        #[arg(long)]
        org: String,
        #[arg(long)]
        domain: String,
    },
}

fn main() -> ExitCode {
    rollcall::install_crypto_provider();
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("rollcall: configuration error: {err}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(&config.log);
    // Before the runtime exists, so that its threads and the SQLite connections' threads
    // inherit the pin (rollcall::affinity says why).
    if matches!(cli.command, Command::Serve)
        && config.sqlite_one_cpu
        && config.database_url.starts_with("sqlite:")
    {
        match rollcall::affinity::pin_to_one_cpu() {
            Some(cpu) => tracing::info!(cpu, "SQLite: the server runs on one CPU (sqlite_one_cpu)"),
            None => tracing::warn!("SQLite: could not keep the server on one CPU"),
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("rollcall: could not start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err}");
            eprintln!("rollcall: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let store = Store::connect(&config.database_url).await?;
    // A backup copies the database as it is: before an upgrade is when one is taken.
    if !matches!(command, Command::Backup { .. }) {
        store.migrate().await?;
    }
    if matches!(command, Command::Serve | Command::Migrate) {
        let sealer = rollcall::secrets::Sealer::from_config(&config.secrets)?;
        operator::seal_stored_secrets(&store, &sealer).await?;
    }
    match command {
        Command::Migrate => {
            tracing::info!(backend = store.backend(), "migrations applied");
        }
        Command::Bootstrap {
            org_slug,
            org_name,
            admin_email,
            admin_name,
        } => {
            let done = operator::bootstrap(
                &store,
                &org_slug,
                &org_name,
                &admin_email,
                admin_name.as_deref(),
            )
            .await?;
            println!(
                "Created organization {:?} with admin {}.",
                done.org.slug, done.admin.email
            );
            println!("Admin API token (shown once, store it now):");
            println!("{}", done.token);
            let base = config.public_base_url.trim_end_matches('/');
            println!();
            println!(
                "To use the console in a browser, give {} a password:",
                done.admin.email
            );
            println!(
                "  read -rs P && printf '%s\\n' \"$P\" | rollcall user set-password --email {}",
                done.admin.email
            );
            println!(
                "then sign in at {base}/login and open \"Manage {}\" from the menu",
                done.org.name
            );
            println!("({base}/orgs/{}/members).", done.org.slug);
        }
        Command::Domain {
            command: DomainCommand::Verify { org, domain },
        } => {
            let verified = operator::verify_domain(&store, &org, &domain).await?;
            println!("{} is verified for organization {org:?}.", verified.domain);
        }
        Command::User {
            command: UserCommand::SetPassword { email },
        } => {
            let mut password = String::new();
            std::io::stdin().read_line(&mut password)?;
            let password = password.trim_end_matches(['\r', '\n']);
            let user = operator::set_password(&store, &email, password).await?;
            println!(
                "Password set for {}; their sessions are signed out.",
                user.email
            );
        }
        Command::Backup { file } => {
            store.backup(&file).await?;
            println!("Backed up {} to {}.", config.database_url, file.display());
        }
        Command::Serve => {
            // Before the mail worker starts, so its first deliveries are counted.
            rollcall::meter::install();
            let listener = tokio::net::TcpListener::bind(config.listen).await?;
            tracing::info!(
                address = %listener.local_addr()?,
                public_base_url = %config.public_base_url,
                backend = store.backend(),
                "rollcall listening"
            );
            let sender = mail::Sender::new(&config.mail)?;
            let (stop_worker, stop) = tokio::sync::watch::channel(false);
            let worker = tokio::spawn(mail::run_worker(
                store.clone(),
                sender,
                config.mail.clone(),
                config.invitations.clone(),
                stop,
            ));
            let state = AppState::new(store.clone(), config)?;
            let refresher = tokio::spawn(connections::saml_metadata::run_refresher(
                state.clone(),
                stop_worker.subscribe(),
            ));
            let metrics = match state.config.metrics.listen {
                Some(address) => {
                    let listener = tokio::net::TcpListener::bind(address).await?;
                    tracing::info!(address = %listener.local_addr()?, "metrics listening");
                    Some(tokio::spawn(server::serve_metrics(listener, state.clone())))
                }
                None => None,
            };
            server::serve(listener, state, server::shutdown_signal()).await?;
            if let Some(metrics) = metrics {
                metrics.abort();
            }
            // A message being sent now finishes; the next pass never starts.
            let _ = stop_worker.send(true);
            let _ = worker.await;
            let _ = refresher.await;
            store.close().await;
            tracing::info!("stopped");
        }
    }
    Ok(())
}
