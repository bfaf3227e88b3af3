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
    // First-run setup.
    ("setup_title", "Create the first administrator", "Первый администратор"),
    (
        "setup_intro",
        "okno has no operators yet. Choose the login and password of its first administrator; you will be signed in at once and can add operators, channels and tokens.",
        "В okno ещё нет ни одного оператора. Выберите логин и пароль первого администратора — вы сразу войдёте и сможете добавить операторов, каналы и токены.",
    ),
    ("setup_password_again", "Password again", "Пароль ещё раз"),
    ("setup_password_hint", "At least 8 characters.", "Не короче 8 символов."),
    ("setup_create", "Create and sign in", "Создать и войти"),
    ("setup_bad_login", "The login must be 1 to 64 characters without spaces.", "Логин — от 1 до 64 символов, без пробелов."),
    ("setup_short_password", "The password needs at least 8 characters.", "Пароль должен быть не короче 8 символов."),
    ("setup_passwords_differ", "The two passwords differ.", "Пароли не совпадают."),
    ("setup_done_title", "Setup is done", "Настройка уже выполнена"),
    ("setup_done", "okno already has an administrator. Sign in with your login and password.", "Администратор в okno уже есть. Войдите со своим логином и паролем."),
    ("setup_invalid_title", "This link does not work", "Ссылка не работает"),
    (
        "setup_invalid",
        "The setup link is unknown, already used or older than 24 hours. Restart okno: while it has no operators, it prints a new link at start. Or create an administrator on the server:",
        "Ссылка для настройки неизвестна, уже использована или старше суток. Перезапустите okno — пока в нём нет операторов, при запуске он печатает новую ссылку. Или создайте администратора на сервере:",
    ),
    ("first_run_title", "No operators yet.", "Операторов пока нет."),
    (
        "first_run_link",
        "To create the first administrator, open the setup link okno printed in its log when it started:",
        "Чтобы создать первого администратора, откройте ссылку, которую okno напечатал в журнале при запуске:",
    ),
    ("first_run_cli", "or create one on the server:", "или создайте его на сервере:"),
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
    // --- contacts (new, edit, merge by search, link codes), broadcasts (list first, time
    // picker), administration pages ---
    ("ct_new", "New contact", "Новый контакт"),
    ("ct_edit", "Edit", "Изменить"),
    ("ct_search_hint", "name, phone, email or external id", "имя, телефон, почта или внешний id"),
    ("ct_saved", "Saved.", "Сохранено."),
    ("ct_created", "The contact is created.", "Контакт создан."),
    (
        "ct_merged",
        "Merged: everything of the other contact is on this card now.",
        "Объединено: всё из другого контакта теперь в этой карточке.",
    ),
    ("ct_id", "okno id", "id в okno"),
    ("ct_user", "user", "пользователь"),
    ("ct_chat", "chat", "чат"),
    ("ct_blocked", "blocked the bot", "заблокировал бота"),
    ("ct_opted_out", "opted out of broadcasts", "отписался от рассылок"),
    ("ct_link", "Link a messenger", "Привязать мессенджер"),
    (
        "ct_link_hint",
        "A one-time code for this person: when they open the link or send the code to the bot, their Telegram joins this card.",
        "Одноразовый код для этого человека: когда он откроет ссылку или отправит код боту, его Telegram добавится в эту карточку.",
    ),
    ("ct_link_code", "Code:", "Код:"),
    ("ct_link_until", "valid until", "действует до"),
    ("ct_link_url", "Link for the person", "Ссылка для человека"),
    (
        "ct_link_no_bot",
        "No Telegram bot is connected yet, and the link needs one (Administration → Channels).",
        "Telegram-бот ещё не подключён, а ссылке он нужен (Администрирование → Каналы).",
    ),
    (
        "ct_link_how",
        "Send the link to the person (by email, SMS, in a chat). It opens the bot with the code; typing the code to the bot works too. The code works once.",
        "Отправьте ссылку человеку (по почте, в SMS, в чате). Она откроет бота с кодом; можно и просто написать код боту. Код срабатывает один раз.",
    ),
    ("ct_merge_find", "Find the other contact", "Найдите другой контакт"),
    ("ct_merge_hint", "name, phone or external id", "имя, телефон или внешний id"),
    ("ct_merge_confirm", "Merge «{other}» into «{this}»?", "Влить «{other}» в «{this}»?"),
    (
        "ct_merge_what",
        "Its messenger accounts and conversations move to this card, this card's empty fields are filled from it, the groups are joined, and the other card is removed. This cannot be undone.",
        "Его аккаунты в мессенджерах и диалоги перейдут в эту карточку, пустые поля этой карточки заполнятся из него, группы объединятся, а другая карточка будет удалена. Отменить это нельзя.",
    ),
    ("ct_merge_do", "Merge", "Объединить"),
    ("ct_cancel", "Cancel", "Отмена"),
    ("ct_merge_none", "Choose the contact to merge in.", "Выберите контакт, который нужно влить."),
    ("ct_merge_same", "A contact cannot be merged into itself.", "Контакт нельзя объединить с самим собой."),
    ("ct_open_other", "Open that contact", "Открыть тот контакт"),
    (
        "cf_phone",
        "«{value}» is not a phone number: 5 to 15 digits, with +, spaces, dashes or brackets if you like.",
        "«{value}» — не номер телефона: от 5 до 15 цифр, можно с +, пробелами, дефисами и скобками.",
    ),
    ("cf_email", "«{value}» is not an email address.", "«{value}» — не адрес электронной почты."),
    ("cf_groups", "Groups (comma-separated)", "Группы (через запятую)"),
    ("cf_groups_bad", "A group name is 1 to 200 characters.", "Название группы — от 1 до 200 символов."),
    ("cf_attrs", "Attributes (one per line: key=value)", "Атрибуты (по одному в строке: ключ=значение)"),
    (
        "cf_attrs_note",
        "A value that reads as JSON (a number, yes or no, text in quotes) is kept as such, anything else as text; a JSON object works too. For example:",
        "Значение, которое читается как JSON (число, да или нет, текст в кавычках), сохраняется как есть, остальное — как текст; можно ввести и JSON-объект. Например:",
    ),
    ("cf_attrs_line", "«{line}»: write an attribute as key=value.", "«{line}»: атрибут пишется как ключ=значение."),
    ("cf_attrs_twice", "The key «{key}» is given twice.", "Ключ «{key}» указан дважды."),
    (
        "cf_attrs_json",
        "This is not a JSON object: write key=value lines or {\"key\": \"value\"}.",
        "Это не JSON-объект: пишите строки ключ=значение или {\"ключ\": \"значение\"}.",
    ),
    (
        "cf_pd_locked",
        "Your role cannot change a phone number or email it cannot see.",
        "Ваша роль не может менять телефон или почту, которые ей не видны.",
    ),
    (
        "cf_pd_locked_note",
        "hidden for your role: an operator who sees it can change it",
        "скрыто для вашей роли: изменить может оператор, которому это видно",
    ),
    ("cf_pd_add_note", "The card has none: you may add one.", "В карточке пусто: можно добавить."),
    (
        "cf_external_note",
        "This person's key in your business system (1C, CRM); no two contacts share one.",
        "Ключ этого человека в вашей учётной системе (1С, CRM); у двух контактов он не совпадает.",
    ),
    ("cf_ext_taken", "Another contact already has the external id «{value}».", "Внешний id «{value}» уже у другого контакта."),
    (
        "cf_changed",
        "Someone changed this contact after you opened the form. Your version is kept below: save again to replace theirs, or open the card to see it first.",
        "Кто-то изменил этот контакт, пока форма была открыта. Ваш вариант сохранён ниже: сохраните ещё раз, чтобы заменить их изменения, или сначала откройте карточку.",
    ),
    (
        "cf_empty",
        "Fill in at least a name, phone, email or external id.",
        "Заполните хотя бы имя, телефон, почту или внешний id.",
    ),
    ("bc_new", "New broadcast", "Новая рассылка"),
    ("bc_when", "When", "Когда"),
    ("bc_starts", "starts", "начнётся"),
    ("bc_none", "No broadcasts yet.", "Рассылок пока нет."),
    ("bc_send_at_local", "Send at (empty: at once)", "Когда отправить (пусто — сразу)"),
    ("time_zone_note", "Time zone:", "Часовой пояс:"),
    ("bc_unsubscribe_default", "Unsubscribe", "Отписаться"),
    ("bc_ph_groups", "clients, vip", "клиенты, vip"),
    ("bc_ph_attrs", "city=Kazan\nvip=true", "city=Казань\nvip=true"),
    ("bc_ph_buttons", "Interested=yes\nNot now=no", "Интересно=yes\nНе сейчас=no"),
    (
        "bc_list_too_long",
        "The list holds {n} entries; at most {max} at once (use a group for more).",
        "В списке {n} записей; за раз не больше {max} (для большего используйте группу).",
    ),
    (
        "bc_list_unknown",
        "{n} entr(ies) of the list match no contact id or external id: {list}",
        "Записей списка, не найденных ни по id контакта, ни по внешнему id: {n}: {list}",
    ),
    ("bc_attr_line", "«{line}»: an attribute is written key=value", "«{line}»: атрибут пишется как ключ=значение"),
    (
        "time_in_past",
        "{value} ({zone}) has already passed: pick a later time, or leave it empty to send at once.",
        "{value} ({zone}) уже прошло: выберите время позже или оставьте пустым, чтобы отправить сразу.",
    ),
    ("time_invalid", "«{value}» is not a date and time.", "«{value}» — не дата и время."),
    ("time_unknown_zone", "«{value}» is not a known time zone.", "«{value}» — неизвестный часовой пояс."),
    ("kind_telegram", "Telegram", "Telegram"),
    ("kind_webhook", "Webhook (your site or app)", "Вебхук (ваш сайт или приложение)"),
    ("ch_inbound_url", "Inbound webhook address", "Адрес для входящих (вебхук)"),
    ("ch_none", "No channels yet: connect a Telegram bot below.", "Каналов пока нет: подключите Telegram-бота ниже."),
    ("ch_mode", "How okno receives messages", "Как okno получает сообщения"),
    (
        "ch_mode_polling",
        "Polling: okno asks Telegram (works without a public address)",
        "Опрос: okno сам спрашивает Telegram (работает без публичного адреса)",
    ),
    (
        "ch_mode_webhook",
        "Webhook: Telegram calls okno (needs a public https address)",
        "Вебхук: Telegram сам обращается к okno (нужен публичный https-адрес)",
    ),
    (
        "ch_mode_note",
        "In webhook mode Telegram reaches okno at OKNO_PUBLIC_URL.",
        "В режиме вебхука Telegram обращается к okno по адресу из OKNO_PUBLIC_URL.",
    ),
    ("ch_api_base", "Telegram Bot API address", "Адрес Telegram Bot API"),
    (
        "ch_api_base_note",
        "Leave it empty for Telegram itself; set it for your own Bot API server or a test simulator.",
        "Оставьте пустым для самого Telegram; укажите для своего сервера Bot API или тестового симулятора.",
    ),
    ("ch_st_active", "active", "работает"),
    ("ch_st_error", "error", "ошибка"),
    ("wh_st_pending", "pending", "ожидает"),
    ("wh_st_delivered", "delivered", "доставлено"),
    ("wh_st_failed", "failed", "не доставлено"),
    ("inactive", "inactive", "выключено"),
    (
        "rules_none",
        "No rules yet. Rules are added through the API or the command line:",
        "Правил пока нет. Правила добавляются через API или командную строку:",
    ),
    (
        "webhooks_none",
        "No webhook subscriptions yet. They are added through the API:",
        "Подписок на вебхуки пока нет. Они добавляются через API:",
    ),
    ("rule_json", "Rule (JSON)", "Правило (JSON)"),
    ("rule_data", "Sample event data (JSON)", "Пример данных события (JSON)"),
    (
        "rule_preview_note",
        "Shows whom the rule would reach with the sample data and the text they would get; nothing is saved or sent.",
        "Показывает, кому правило отправит сообщение при таких данных и какой текст; ничего не сохраняется и не отправляется.",
    ),
    (
        "rule_not_json",
        "The rule is not valid JSON (line {line}, column {column}).",
        "Правило — не корректный JSON (строка {line}, столбец {column}).",
    ),
    (
        "rule_data_not_json",
        "The sample data is not valid JSON (line {line}, column {column}).",
        "Пример данных — не корректный JSON (строка {line}, столбец {column}).",
    ),
    ("bot_formats", "YAML or JSON, see", "YAML или JSON, см."),
    ("bot_menus", "menus", "меню"),
    ("bot_forms", "forms", "формы"),
    ("bot_lookups", "lookups", "запросы"),
    ("canned_shortcut", "Shortcut (typed after /)", "Сокращение (вводится после /)"),
    ("canned_ph", "hello", "привет"),
    ("role_admin", "administrator", "администратор"),
    ("role_operator", "operator", "оператор"),
    ("role_restricted", "operator without personal data", "оператор без персональных данных"),
    ("role_integration", "integration", "интеграция"),
    ("bc_text_tpl", "Text — a template, for example", "Текст — шаблон, например"),
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
