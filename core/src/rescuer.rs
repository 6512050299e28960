//! Certified volunteer rescuers. Everything here is personal data: never in public responses.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::validate::{clean, max_len, FieldError, Validated};

/// Red Cross certification levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CertLevel {
    /// 救护员 — certified first aider.
    FirstAider,
    /// 救护师 — first-aid instructor.
    Instructor,
    /// 培训导师 — trains instructors.
    Trainer,
}

impl CertLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            CertLevel::FirstAider => "first_aider",
            CertLevel::Instructor => "instructor",
            CertLevel::Trainer => "trainer",
        }
    }
    pub fn parse(s: &str) -> Option<CertLevel> {
        [
            CertLevel::FirstAider,
            CertLevel::Instructor,
            CertLevel::Trainer,
        ]
        .into_iter()
        .find(|l| l.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RescuerData {
    pub name: String,
    pub phone: Option<String>,
    pub certificate_no: String,
    pub level: CertLevel,
    pub cert_issued: NaiveDate,
    pub cert_expires: NaiveDate,
    /// e.g. 蓝天救援队.
    pub team: Option<String>,
    pub skills: Vec<String>,
    pub on_duty: bool,
    /// Consent to share live location while on duty; without it no location is kept.
    pub location_consent: bool,
    pub district_id: Option<i64>,
}

impl RescuerData {
    /// A certificate counts on the days from issue to expiry, both included.
    pub fn is_certified_on(&self, day: NaiveDate) -> bool {
        self.cert_issued <= day && day <= self.cert_expires
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Rescuer {
    pub id: i64,
    #[serde(flatten)]
    pub data: RescuerData,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RescuerInput {
    pub name: String,
    #[serde(default)]
    pub phone: Option<String>,
    pub certificate_no: String,
    pub level: CertLevel,
    pub cert_issued: NaiveDate,
    pub cert_expires: NaiveDate,
    #[serde(default)]
    pub team: Option<String>,
    #[serde(default)]
    pub skills: Vec<String>,
    #[serde(default)]
    pub on_duty: bool,
    #[serde(default)]
    pub location_consent: bool,
    #[serde(default)]
    pub district_id: Option<i64>,
}

impl RescuerInput {
    pub fn validate(self) -> Validated<RescuerData> {
        let name = self.name.trim().to_string();
        if name.is_empty() {
            return Err(FieldError::new("name", "must not be empty"));
        }
        max_len("name", &Some(name.clone()), 100)?;
        let certificate_no = self.certificate_no.trim().to_string();
        if certificate_no.is_empty() || certificate_no.len() > 64 {
            return Err(FieldError::new(
                "certificate_no",
                "must be 1 to 64 characters",
            ));
        }
        let phone = clean(self.phone);
        if let Some(p) = &phone {
            let digits = p.chars().filter(char::is_ascii_digit).count();
            let ok_chars = p.chars().all(|c| c.is_ascii_digit() || " +-()".contains(c));
            if !ok_chars || !(5..=20).contains(&digits) {
                return Err(FieldError::new(
                    "phone",
                    "must be 5 to 20 digits, optionally with + - ( ) and spaces",
                ));
            }
        }
        if self.cert_expires < self.cert_issued {
            return Err(FieldError::new(
                "cert_expires",
                "must not be before cert_issued",
            ));
        }
        let team = clean(self.team);
        max_len("team", &team, 100)?;
        Ok(RescuerData {
            name,
            phone,
            certificate_no,
            level: self.level,
            cert_issued: self.cert_issued,
            cert_expires: self.cert_expires,
            team,
            skills: self
                .skills
                .into_iter()
                .filter_map(|s| clean(Some(s)))
                .collect(),
            on_duty: self.on_duty,
            location_consent: self.location_consent,
            district_id: self.district_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> RescuerInput {
        RescuerInput {
            name: "王芳".into(),
            phone: Some("+86 138-0000-0000".into()),
            certificate_no: "ZJ-2024-000123".into(),
            level: CertLevel::FirstAider,
            cert_issued: NaiveDate::from_ymd_opt(2024, 5, 1).unwrap(),
            cert_expires: NaiveDate::from_ymd_opt(2028, 4, 30).unwrap(),
            team: Some("蓝天救援队".into()),
            skills: vec!["CPR".into(), " ".into()],
            on_duty: true,
            location_consent: true,
            district_id: None,
        }
    }

    #[test]
    fn certificate_validity_includes_both_ends() {
        let r = input().validate().unwrap();
        assert_eq!(r.skills, vec!["CPR".to_string()]);
        assert!(r.is_certified_on(NaiveDate::from_ymd_opt(2028, 4, 30).unwrap()));
        assert!(!r.is_certified_on(NaiveDate::from_ymd_opt(2028, 5, 1).unwrap()));
    }

    #[test]
    fn rejects_bad_fields_by_name() {
        let mut i = input();
        i.cert_expires = NaiveDate::from_ymd_opt(2020, 1, 1).unwrap();
        assert_eq!(i.validate().unwrap_err().field, "cert_expires");
        let mut i = input();
        i.phone = Some("call me".into());
        assert_eq!(i.validate().unwrap_err().field, "phone");
    }
}
