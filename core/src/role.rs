//! Who may do what. A bearer token carries exactly one role.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// No token: callers looking for an AED.
    Public,
    Rescuer,
    Dispatcher,
    Maintenance,
    Planner,
    Admin,
    Device,
}

impl Role {
    pub const ALL: [Role; 7] = [
        Role::Public,
        Role::Rescuer,
        Role::Dispatcher,
        Role::Maintenance,
        Role::Planner,
        Role::Admin,
        Role::Device,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Public => "public",
            Role::Rescuer => "rescuer",
            Role::Dispatcher => "dispatcher",
            Role::Maintenance => "maintenance",
            Role::Planner => "planner",
            Role::Admin => "admin",
            Role::Device => "device",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Staff roles may see cabinet codes and operational detail of AEDs.
    pub fn sees_cabinet_codes(self) -> bool {
        matches!(self, Role::Admin | Role::Maintenance)
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::parse(s).ok_or_else(|| {
            let all: Vec<_> = Role::ALL.iter().map(|r| r.as_str()).collect();
            format!("unknown role '{s}', expected one of {}", all.join(", "))
        })
    }
}
