//! The harness both store test files share: a fresh SQLite file or a fresh PostgreSQL database
//! per test, and `both!` generating the `sqlite_…` and `postgres_…` test of each case.

use aednet_store::DynStore;

const PG_DEFAULT: &str = "postgres://postgres@127.0.0.1:5432/postgres";

pub struct Fresh {
    pub store: DynStore,
    _dir: Option<tempfile::TempDir>,
    pg: Option<String>,
}

impl Fresh {
    pub async fn sqlite() -> Fresh {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("s.db").display());
        Fresh {
            store: aednet_store::connect(&url).await.unwrap(),
            _dir: Some(dir),
            pg: None,
        }
    }

    pub async fn postgres() -> Fresh {
        use sqlx::Connection;
        let admin = std::env::var("AEDNET_TEST_PG_URL").unwrap_or_else(|_| PG_DEFAULT.into());
        let name = format!("aednet_store_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .expect("PostgreSQL must be reachable (AEDNET_TEST_PG_URL, default 127.0.0.1:5432)");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .unwrap();
        let base = admin.rsplit_once('/').unwrap().0;
        let store = aednet_store::connect(&format!("{base}/{name}"))
            .await
            .unwrap();
        Fresh {
            store,
            _dir: None,
            pg: Some(name),
        }
    }

    pub async fn done(self) {
        use sqlx::Connection;
        drop(self.store);
        if let Some(name) = self.pg {
            let admin = std::env::var("AEDNET_TEST_PG_URL").unwrap_or_else(|_| PG_DEFAULT.into());
            let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut conn)
                .await
                .unwrap();
        }
    }
}

/// Generates `sqlite_<name>` and `postgres_<name>` tests for an `async fn(&DynStore)`.
macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test] async fn $name() { let f = super::Fresh::sqlite().await; super::$name(&f.store).await; f.done().await; })*
        }
        mod postgres {
            $(#[tokio::test] async fn $name() { let f = super::Fresh::postgres().await; super::$name(&f.store).await; f.done().await; })*
        }
    };
}
