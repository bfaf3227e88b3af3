//! The UI's two languages. An operator picks one (kept in the `okno_lang` cookie); until then
//! the browser's `Accept-Language` decides. Templates call `t("key")`.

use axum::http::HeaderMap;

/// A UI language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Ru,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Ru => "ru",
        }
    }

    pub fn parse(s: &str) -> Option<Lang> {
        match s {
            "en" => Some(Lang::En),
            "ru" => Some(Lang::Ru),
            _ => None,
        }
    }

    /// The language chosen in the cookie, else the browser's first preference.
    pub fn of(headers: &HeaderMap) -> Lang {
        if let Some(l) = super::session::cookie_value(headers, "okno_lang").and_then(|v| Lang::parse(&v)) {
            return l;
        }
        let accept = headers.get(axum::http::header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()).unwrap_or("");
        if accept.trim_start().to_ascii_lowercase().starts_with("ru") {
            Lang::Ru
        } else {
            Lang::En
        }
    }
}

/// The text for `key` in `lang`; an unknown key shows as itself, so a gap is visible.
pub fn t(lang: Lang, key: &str) -> String {
    TEXTS
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|(_, en, ru)| if lang == Lang::Ru { *ru } else { *en })
        .unwrap_or(key)
        .to_string()
}

/// key, English, Russian.
const TEXTS: &[(&str, &str, &str)] = &[
    ("login_title", "Sign in", "Вход"),
    ("login", "Login", "Логин"),
    ("password", "Password", "Пароль"),
    ("sign_in", "Sign in", "Войти"),
    ("logout", "Log out", "Выйти"),
    ("bad_login", "Wrong login or password.", "Неверный логин или пароль."),
    (
        "too_many_logins",
        "Too many failed attempts. Try again in 15 minutes.",
        "Слишком много неудачных попыток. Попробуйте через 15 минут.",
    ),
    (
        "csrf_failed",
        "The form has expired or came from another site. Reload the page and try again.",
        "Форма устарела или пришла с другого сайта. Обновите страницу и повторите.",
    ),
    ("inbox", "Inbox", "Входящие"),
    ("contacts", "Contacts", "Контакты"),
    ("admin", "Administration", "Администрирование"),
    ("channels", "Channels", "Каналы"),
    ("tokens", "API tokens", "API-токены"),
    ("webhooks", "Webhooks", "Вебхуки"),
    ("rules", "Rules", "Правила"),
    ("audit", "Audit log", "Журнал аудита"),
    ("status", "Status", "Статус"),
    ("channel", "Channel", "Канал"),
    ("assignee", "Assignee", "Ответственный"),
    ("label", "Label", "Метка"),
    ("labels", "Labels", "Метки"),
    ("search", "Search", "Поиск"),
    ("search_hint", "name, phone or any message's text", "имя, телефон или текст любого сообщения"),
    ("all", "All", "Все"),
    ("mine", "Mine", "Мои"),
    ("unassigned", "Unassigned", "Без ответственного"),
    ("apply", "Apply", "Применить"),
    ("st_open", "Open", "Открыт"),
    ("st_pending", "Pending", "Ожидает"),
    ("st_resolved", "Resolved", "Решён"),
    ("st_bot", "Bot", "Бот"),
    ("no_conversations", "No conversations match.", "Нет подходящих диалогов."),
    ("no_messages", "No messages yet.", "Сообщений пока нет."),
    ("reply", "Reply", "Ответ"),
    ("send", "Send", "Отправить"),
    ("send_via", "Send via", "Отправить через"),
    ("type_reply", "Type a reply…", "Введите ответ…"),
    ("assign_me", "Take", "Взять себе"),
    ("unassign", "Release", "Снять"),
    ("resolve", "Resolve", "Решить"),
    ("reopen", "Reopen", "Открыть снова"),
    ("pending", "Set pending", "В ожидание"),
    ("save", "Save", "Сохранить"),
    ("retry", "Retry", "Повторить"),
    ("failed", "Failed", "Ошибка"),
    ("m_queued", "queued", "в очереди"),
    ("m_sent", "sent", "отправлено"),
    ("m_delivered", "delivered", "доставлено"),
    ("m_read", "read", "прочитано"),
    ("m_failed", "failed", "не доставлено"),
    ("m_received", "received", "получено"),
    ("contact", "Contact", "Контакт"),
    ("name", "Name", "Имя"),
    ("phone", "Phone", "Телефон"),
    ("email", "Email", "Эл. почта"),
    ("external_id", "External id", "Внешний id"),
    ("groups", "Groups", "Группы"),
    ("attributes", "Attributes", "Атрибуты"),
    ("identities", "Identities", "Аккаунты в мессенджерах"),
    ("conversations", "Conversations", "Диалоги"),
    ("merge", "Merge into this contact", "Объединить с этим контактом"),
    ("merge_hint", "id of the contact to merge in (it is removed)", "id контакта, который вливается (он будет удалён)"),
    ("masked_note", "Phone and email are hidden for your role.", "Телефон и почта скрыты для вашей роли."),
    ("new_message", "New message", "Новое сообщение"),
    ("notify_enable", "Enable notifications", "Включить уведомления"),
    ("live", "live", "онлайн"),
    ("offline", "reconnecting…", "переподключение…"),
    ("open_card", "Contact card", "Карточка контакта"),
    ("by_rule", "notification", "уведомление"),
    ("you", "you", "вы"),
    ("kind", "Kind", "Тип"),
    ("error", "Error", "Ошибка"),
    ("created", "Created", "Создан"),
    ("connect_telegram", "Connect a Telegram bot", "Подключить Telegram-бота"),
    ("bot_token", "Bot token (from @BotFather)", "Токен бота (от @BotFather)"),
    ("connect", "Connect", "Подключить"),
    ("role", "Role", "Роль"),
    ("create", "Create", "Создать"),
    ("revoke", "Revoke", "Отозвать"),
    ("token_once", "Copy the token now; it is shown once:", "Скопируйте токен сейчас, он показывается один раз:"),
    ("url", "URL", "Адрес"),
    ("events", "Events", "События"),
    ("deliveries", "Deliveries", "Доставки"),
    ("event", "Event", "Событие"),
    ("actor", "Who", "Кто"),
    ("action", "Action", "Действие"),
    ("target", "Object", "Объект"),
    ("when", "When", "Когда"),
    ("details", "Details", "Подробности"),
    ("next_page", "Next page", "Следующая страница"),
    ("language", "Language", "Язык"),
    ("not_found", "Not found.", "Не найдено."),
    ("forbidden", "Your role may not do this.", "Вашей роли это не разрешено."),
    ("error_title", "Something went wrong", "Что-то пошло не так"),
    ("back", "Back", "Назад"),
    ("no_channel", "No channel reaches this contact.", "Ни один канал не связан с этим контактом."),
    ("attempts", "Attempts", "Попытки"),
    ("code", "HTTP", "HTTP"),
    ("active", "Active", "Активен"),
    ("preview", "Preview", "Предпросмотр"),
    ("template", "Template", "Шаблон"),
    ("bots", "Bots", "Боты"),
    ("reports", "Reports", "Отчёты"),
    ("canned", "Canned responses", "Шаблоны ответов"),
    ("attach", "+ File", "+ Файл"),
    ("operators", "Operators", "Операторы"),
    ("roles", "Roles", "Роли"),
    ("p_read", "Read", "Чтение"),
    ("p_write", "Answer, change", "Ответы, изменения"),
    ("p_personal", "Phones and emails", "Телефоны и почта"),
    ("p_subscribe", "Webhook subscriptions", "Подписки на вебхуки"),
    ("p_configure", "Administration", "Администрирование"),
    ("text", "Text", "Текст"),
    ("canned_hint", "Type / for canned responses", "Введите / для шаблонов ответов"),
    ("period_days", "Days", "Дней"),
    ("rating_event", "Rated event", "Событие с оценкой"),
    ("rating_group", "Manager field", "Поле менеджера"),
    ("messages_per_day", "Messages per channel per day", "Сообщения по каналам и дням"),
    (
        "first_response",
        "First response time per operator (median, minutes · conversations)",
        "Время первого ответа по операторам (медиана, минуты · диалоги)",
    ),
    (
        "resolution_time",
        "Resolution time per operator (median, minutes · conversations)",
        "Время решения по операторам (медиана, минуты · диалоги)",
    ),
    (
        "resolution_note",
        "Resolution: from the conversation's first message in the period to its last change while resolved.",
        "Решение: от первого сообщения диалога за период до его последнего изменения в статусе «решён».",
    ),
    ("ratings", "Ratings per manager (average · answers)", "Оценки по менеджерам (среднее · ответы)"),
    ("bot_upload", "Check or attach a bot definition", "Проверить или подключить описание бота"),
    ("definition", "Definition", "Описание"),
    ("check", "Check", "Проверить"),
    ("saved", "attached to the channel", "подключён к каналу"),
    ("broadcasts", "Broadcasts", "Рассылки"),
    ("note", "note", "заметка"),
    ("add_note", "Add a private note", "Добавить заметку"),
    ("note_hint", "Seen by operators only; never sent", "Видна только операторам, не отправляется"),
    ("snooze_1h", "Snooze 1 h", "Отложить на час"),
    ("snooze_1d", "Snooze 1 day", "Отложить на день"),
    ("snoozed_until", "snoozed until", "отложен до"),
    ("bc_total", "people", "получателей"),
    ("bc_sent", "sent", "отправлено"),
    ("bc_failed", "failed", "ошибок"),
    ("bc_pending", "waiting", "в очереди"),
    ("bc_skipped", "opted out", "отписались"),
    ("bc_cancelled_n", "cancelled", "отменено"),
    ("bc_scheduled", "scheduled", "запланирована"),
    ("bc_running", "sending", "идёт"),
    ("bc_paused", "paused", "на паузе"),
    ("bc_done", "done", "завершена"),
    ("bc_cancelled", "cancelled", "отменена"),
    ("bc_pause", "Pause", "Пауза"),
    ("bc_resume", "Resume", "Продолжить"),
    ("bc_cancel", "Cancel", "Отменить"),
    ("bc_answers", "Answers to its buttons", "Ответы на кнопки"),
    ("bc_unsubscribed", "Unsubscribed by its button", "Отписались кнопкой"),
    ("bc_reasons", "Failures by reason", "Ошибки по причинам"),
    ("bc_progress", "Progress", "Ход"),
    ("bc_groups", "Contact groups (comma-separated)", "Группы контактов (через запятую)"),
    ("bc_text", "Text (a template: {{ contact.first_name }}…)", "Текст (шаблон: {{ contact.first_name }}…)"),
    ("bc_send_at", "Send at (RFC 3339, empty: now)", "Когда (RFC 3339, пусто — сразу)"),
    ("bc_unsubscribe", "Unsubscribe button (empty: none)", "Кнопка отписки (пусто — без неё)"),
    ("bc_start", "Start the broadcast", "Запустить рассылку"),
    ("bc_audience", "Audience (any of the three; each person once)", "Получатели (любой из трёх способов; каждый один раз)"),
    (
        "bc_list",
        "A list: contact ids or external ids, one per line or separated by commas",
        "Список: id контактов или внешние id, по одному в строке или через запятую",
    ),
    ("bc_filter", "A filter (every condition given must hold)", "Фильтр (все заданные условия)"),
    ("bc_f_group", "Member of the group", "Состоит в группе"),
    ("bc_f_attrs", "Attributes equal (one per line: key=value)", "Атрибуты равны (по одному в строке: ключ=значение)"),
    ("bc_f_q", "Text in name, phone, email or external id", "Текст в имени, телефоне, почте или внешнем id"),
    ("bc_f_kind", "Has a channel of kind", "Есть канал типа"),
    ("bc_any", "any", "любой"),
    (
        "bc_buttons",
        "Answer buttons (one per line: text, or text=answer)",
        "Кнопки-ответы (по одной в строке: текст или текст=ответ)",
    ),
    ("bc_count", "Count the audience", "Посчитать получателей"),
    ("bc_holds", "People in the audience", "Получателей"),
    (
        "bc_count_note",
        "People who opted out of broadcasts are counted here and skipped when it is sent.",
        "Отписавшиеся от рассылок здесь посчитаны, при отправке они будут пропущены.",
    ),
    ("bc_for_example", "For example", "Например"),
    (
        "bc_q_forbidden",
        "The text filter also matches phone numbers and emails, which your role may not see: use groups, a list or attributes.",
        "Текстовый фильтр ищет и по телефонам и почте, которые вашей роли не видны: используйте группы, список или атрибуты.",
    ),
    ("bc_empty", "Nobody matches: change the audience.", "Никто не подходит: измените получателей."),
    (
        "bc_count_first",
        "Count the audience first, then start.",
        "Сначала посчитайте получателей, затем запускайте.",
    ),
    ("account_disabled", "This account is disabled.", "Эта учётная запись отключена."),
    ("cannot_disable_self", "You cannot disable yourself.", "Нельзя отключить самого себя."),
    (
        "last_admin",
        "This is the last administrator: make another operator an administrator first.",
        "Это последний администратор: сначала назначьте администратором другого оператора.",
    ),
    ("op_state", "State", "Состояние"),
    ("op_sessions", "Open sessions", "Открытые сессии"),
    ("op_new_password", "New password", "Новый пароль"),
    ("op_you", "you", "вы"),
    ("op_change", "Change", "Изменить"),
    ("op_active", "active", "активен"),
    ("op_disabled", "disabled", "отключён"),
    ("op_enable", "Enable", "Включить"),
    ("op_disable", "Disable", "Отключить"),
    ("op_set", "Set", "Задать"),
    (
        "op_note",
        "Disabling an operator or setting a new password ends their sessions at once, on every okno process. The last administrator cannot be disabled or given another role.",
        "Отключение оператора или новый пароль сразу завершают его сессии на всех процессах okno. Последнего администратора нельзя отключить или лишить роли.",
    ),
    ("my_account", "My account", "Моя учётная запись"),
    ("change_password", "Change the password", "Сменить пароль"),
    ("current_password", "Current password", "Текущий пароль"),
    ("new_password", "New password (at least 8 characters)", "Новый пароль (не короче 8 символов)"),
    ("repeat_password", "The new password again", "Новый пароль ещё раз"),
    (
        "password_note",
        "Your other sessions (other browsers) end; this one stays signed in.",
        "Другие ваши сессии (в других браузерах) завершатся, эта останется.",
    ),
    ("password_changed", "The password is changed.", "Пароль изменён."),
    ("password_mismatch", "The two new passwords differ.", "Новые пароли не совпадают."),
    ("wrong_current_password", "The current password is wrong.", "Текущий пароль неверен."),
    (
        "search_limited",
        "The newest matches are shown; narrow the search to see older ones.",
        "Показаны самые новые совпадения; уточните поиск, чтобы увидеть более старые.",
    ),
    (
        "broadcast_results",
        "Broadcast results (people: sent · failed · waiting; answered, unsubscribed)",
        "Итоги рассылок (получатели: отправлено · ошибки · в очереди; ответили, отписались)",
    ),
    ("bc_answered", "answered", "ответили"),
    // The operator's window: authors, button presses, the three panes, shortcuts.
    ("author_bot", "bot \"{name}\"", "бот «{name}»"),
    ("author_bot_plain", "bot", "бот"),
    ("author_broadcast", "broadcast \"{name}\"", "рассылка «{name}»"),
    ("author_broadcast_plain", "broadcast", "рассылка"),
    ("author_survey", "survey \"{name}\"", "опрос «{name}»"),
    ("author_survey_plain", "survey", "опрос"),
    ("author_rule", "notification \"{name}\"", "уведомление «{name}»"),
    ("author_rule_plain", "notification", "уведомление"),
    ("author_token", "API token \"{name}\"", "API-токен «{name}»"),
    ("pressed", "pressed \"{label}\"", "нажата кнопка «{label}»"),
    ("pressed_answer", "answered \"{value}\"", "ответ «{value}»"),
    ("pressed_unsubscribe", "pressed \"Unsubscribe\"", "нажата кнопка «Отписаться»"),
    ("pressed_bot", "pressed a bot menu button", "нажата кнопка меню бота"),
    ("pressed_survey", "answered a survey question", "ответ на вопрос опроса"),
    ("pressed_other", "pressed a button", "нажата кнопка"),
    ("unread", "unread", "непрочитанные"),
    ("pick_conversation", "Choose a conversation on the left.", "Выберите диалог слева."),
    ("pick_hint", "Or press j for the first one and ? for the keyboard shortcuts.", "Или нажмите j — откроется первый, ? — список клавиш."),
    ("contact_panel", "Contact", "Контакт"),
    ("other_conversations", "Other conversations", "Другие диалоги"),
    ("no_other_conversations", "None", "Нет"),
    ("ident_active", "active", "активен"),
    ("ident_blocked", "blocked", "заблокирован"),
    ("ident_opted_out", "unsubscribed", "отписан"),
    ("last_seen", "last seen", "был(а)"),
    ("shortcuts", "Keyboard shortcuts", "Горячие клавиши"),
    ("key_next", "next conversation", "следующий диалог"),
    ("key_prev", "previous conversation", "предыдущий диалог"),
    ("key_reply", "reply (to the reply box)", "ответить (в поле ответа)"),
    ("key_resolve", "resolve", "закрыть диалог"),
    ("key_assign", "assign to me", "взять себе"),
    ("key_search", "search", "поиск"),
    ("key_send", "send the reply", "отправить ответ"),
    ("key_escape", "leave the box you type in; close this list", "выйти из поля ввода; закрыть этот список"),
    ("key_help", "this list", "этот список"),
    ("keys_not_typing", "Letters act only when you are not typing in a field.", "Буквы действуют, только когда курсор не в поле ввода."),
    ("close", "Close", "Закрыть"),
    ("shortcuts_short", "Keys", "Клавиши"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_text_is_translated_and_keys_are_unique() {
        let mut keys: Vec<&str> = TEXTS.iter().map(|(k, _, _)| *k).collect();
        for (k, en, ru) in TEXTS {
            assert!(!en.is_empty() && !ru.is_empty(), "{k}");
        }
        keys.sort_unstable();
        let n = keys.len();
        keys.dedup();
        assert_eq!(keys.len(), n, "duplicate keys");
        assert_eq!(t(Lang::Ru, "inbox"), "Входящие");
        assert_eq!(t(Lang::En, "no-such-key"), "no-such-key");
    }
}
