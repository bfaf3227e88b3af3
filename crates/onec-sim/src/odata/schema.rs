//! The published entity sets: their fields with OData types, and `$metadata` written from them.

/// An OData type, as 1C maps its own: strings and enumerations `Edm.String`, references
/// `Edm.Guid`, numbers `Edm.Int64` (written as text in JSON), `Edm.Boolean`, `Edm.DateTime`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Edm {
    String,
    Guid,
    Boolean,
    Int64,
    DateTime,
}

impl Edm {
    fn name(self) -> &'static str {
        match self {
            Edm::String => "Edm.String",
            Edm::Guid => "Edm.Guid",
            Edm::Boolean => "Edm.Boolean",
            Edm::Int64 => "Edm.Int64",
            Edm::DateTime => "Edm.DateTime",
        }
    }
}

/// The contact-information tabular part of the standard subsystems library.
pub const CONTACT_PART: &str = "КонтактнаяИнформация";

/// Its row fields, in 1C's order.
pub(crate) const CONTACT_ROW: &[(&str, Edm)] = &[
    ("Ref_Key", Edm::Guid),
    ("LineNumber", Edm::Int64),
    ("Тип", Edm::String),
    ("Вид_Key", Edm::Guid),
    ("Представление", Edm::String),
    ("ЗначенияПолей", Edm::String),
    ("Страна", Edm::String),
    ("Регион", Edm::String),
    ("Город", Edm::String),
    ("АдресЭП", Edm::String),
    ("ДоменноеИмяСервера", Edm::String),
    ("НомерТелефона", Edm::String),
    ("НомерТелефонаБезКодов", Edm::String),
    ("Значение", Edm::String),
];

/// One published catalog.
#[derive(Debug)]
pub(crate) struct SetSchema {
    pub name: &'static str,
    pub hierarchical: bool,
    /// Fields besides the standard ones, in 1C's order.
    pub fields: &'static [(&'static str, Edm)],
}

/// The catalogs the simulator publishes.
pub(crate) const SETS: &[SetSchema] = &[
    SetSchema {
        name: "Catalog_Контрагенты",
        hierarchical: true,
        fields: &[
            ("НаименованиеПолное", Edm::String),
            ("ИНН", Edm::String),
            ("КПП", Edm::String),
            ("ЮрФизЛицо", Edm::String),
            ("Комментарий", Edm::String),
        ],
    },
    SetSchema {
        name: "Catalog_Сотрудники",
        hierarchical: false,
        fields: &[("ФизическоеЛицо_Key", Edm::Guid), ("Должность", Edm::String), ("ВАрхиве", Edm::Boolean)],
    },
];

impl SetSchema {
    /// Every field of an object, in order: the standard ones, then the catalog's own.
    pub(crate) fn columns(&self) -> Vec<(&'static str, Edm)> {
        let mut c = vec![
            ("Ref_Key", Edm::Guid),
            ("DataVersion", Edm::String),
            ("DeletionMark", Edm::Boolean),
            ("Predefined", Edm::Boolean),
            ("PredefinedDataName", Edm::String),
        ];
        if self.hierarchical {
            c.push(("Parent_Key", Edm::Guid));
            c.push(("IsFolder", Edm::Boolean));
        }
        c.push(("Code", Edm::String));
        c.push(("Description", Edm::String));
        c.extend_from_slice(self.fields);
        c
    }

    /// A field's type; the tabular part is not a field a filter can compare.
    pub(crate) fn field(&self, name: &str) -> Option<Edm> {
        self.columns().into_iter().find(|(n, _)| *n == name).map(|(_, e)| e)
    }
}

pub(crate) fn find(name: &str) -> Option<&'static SetSchema> {
    SETS.iter().find(|s| s.name == name)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('"', "&quot;")
}

/// `$metadata`: the EDMX document 1C publishes (OData v3, namespace `StandardODATA`).
pub(crate) fn metadata() -> String {
    let mut x = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<edmx:Edmx xmlns:edmx=\"http://schemas.microsoft.com/ado/2007/06/edmx\" Version=\"1.0\">\n\
         <edmx:DataServices xmlns:m=\"http://schemas.microsoft.com/ado/2007/08/dataservices/metadata\" m:DataServiceVersion=\"3.0\" m:MaxDataServiceVersion=\"3.0\">\n\
         <Schema xmlns=\"http://schemas.microsoft.com/ado/2009/11/edm\" Namespace=\"StandardODATA\">\n",
    );
    for s in SETS {
        x.push_str(&format!("<EntityType Name=\"{}\"><Key><PropertyRef Name=\"Ref_Key\"/></Key>", escape(s.name)));
        for (n, e) in s.columns() {
            let nullable = if n == "Ref_Key" { "false" } else { "true" };
            x.push_str(&format!("<Property Name=\"{}\" Type=\"{}\" Nullable=\"{nullable}\"/>", escape(n), e.name()));
        }
        x.push_str(&format!(
            "<Property Name=\"{CONTACT_PART}\" Type=\"Collection(StandardODATA.{}_{CONTACT_PART}_RowType)\" Nullable=\"true\"/></EntityType>\n",
            escape(s.name)
        ));
        x.push_str(&format!("<ComplexType Name=\"{}_{CONTACT_PART}_RowType\">", escape(s.name)));
        for (n, e) in CONTACT_ROW {
            x.push_str(&format!("<Property Name=\"{}\" Type=\"{}\" Nullable=\"true\"/>", escape(n), e.name()));
        }
        x.push_str("</ComplexType>\n");
    }
    x.push_str("<EntityContainer Name=\"StandardODATA\" m:IsDefaultEntityContainer=\"true\">");
    for s in SETS {
        x.push_str(&format!("<EntitySet Name=\"{0}\" EntityType=\"StandardODATA.{0}\"/>", escape(s.name)));
    }
    x.push_str("</EntityContainer>\n</Schema>\n</edmx:DataServices>\n</edmx:Edmx>\n");
    x
}
