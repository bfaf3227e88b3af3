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
    // --- okno demo: the operator UI's banner and login hint, the phone page, the 1C console ---
    ("demo_badge", "Demo", "Демо"),
    (
        "demo_banner",
        "Customers, employees, Telegram and 1C are simulated here; nothing leaves this computer.",
        "Клиенты, сотрудники, Telegram и 1С здесь — симуляция; ничего не уходит за пределы этого компьютера.",
    ),
    ("demo_open_phone", "📱 Phone: be a customer or an employee", "📱 Телефон: станьте клиентом или сотрудником"),
    ("demo_open_console", "🏢 1C console", "🏢 Пульт 1С"),
    ("demo_admin", "Demo administrator", "Демо-администратор"),
    ("demo_title_phone", "Phone", "Телефон"),
    ("demo_title_console", "1C console", "Пульт 1С"),
    ("demo_nav_phone", "📱 Phone", "📱 Телефон"),
    ("demo_nav_console", "🏢 1C console", "🏢 Пульт 1С"),
    ("demo_nav_okno", "🪟 Operator window", "🪟 Окно оператора"),
    (
        "demo_live_off",
        "Live updates are off; the page reconnects by itself.",
        "Живые обновления отключены; страница переподключится сама.",
    ),
    ("demo_you_are", "You are", "Вы —"),
    (
        "demo_phone_note",
        "What the bots send arrives here live; what people write to operators appears in the",
        "Ответы ботов приходят сюда сразу; то, что люди пишут операторам, появляется в разделе",
    ),
    ("demo_chats", "Chats", "Чаты"),
    ("demo_back", "Back", "Назад"),
    ("demo_attach", "Send a file", "Отправить файл"),
    ("demo_write", "Message", "Сообщение"),
    ("demo_send", "Send", "Отправить"),
    ("demo_start", "Start", "Начать"),
    ("demo_pick_chat", "Pick a chat on the left.", "Выберите чат слева."),
    ("demo_reply", "Reply", "Ответить"),
    ("demo_edited", "edited", "изменено"),
    ("demo_you_pressed", "You pressed", "Вы нажали"),
    (
        "demo_not_started",
        "Not started yet: open the chat and press Start.",
        "Ещё не начат: откройте чат и нажмите «Начать».",
    ),
    ("demo_no_messages", "No messages yet.", "Сообщений пока нет."),
    ("demo_open_bot", "Open the bot", "Открыть бота"),
    ("demo_group_members", "Members", "Участники"),
    ("demo_photo", "🖼 Photo", "🖼 Фото"),
    (
        "demo_console_intro",
        "Here you are the business system (1C): post the sample events and the task to okno's API as 1C would, and see okno's deliveries and everything that reached 1C. Then look at the phones.",
        "Здесь вы — учётная система (1С): отправьте в API okno образцы событий и задачу, как это делает 1С, и посмотрите, кому okno их доставил и что пришло в 1С. Затем загляните в телефоны.",
    ),
    ("demo_events", "Events from 1C (examples/events)", "События из 1С (examples/events)"),
    (
        "demo_events_hint",
        "The first post uses the sample's own key; posting it again shows okno refusing a duplicate. «New key» makes a new event of it.",
        "Первая отправка идёт с ключом из образца; повторная показывает, что okno не отправит дубль. «С новым ключом» — новое событие.",
    ),
    ("demo_post", "Post", "Отправить"),
    ("demo_post_again", "With a new key", "С новым ключом"),
    ("demo_recipients", "Goes to", "Кому"),
    ("demo_subscriber", "whoever asked the shop bot about the order", "тому, кто спрашивал бота магазина о заказе"),
    (
        "demo_no_subscriber",
        "Nobody has asked the shop bot about order 100421 yet, so 1C has nobody to tell. On the phone, be Ольга Ромашкина or Наталья Белова, open «Стройторг · магазин» and send 100421; then post this event.",
        "Бота магазина ещё никто не спрашивал о заказе 100421, и 1С некого уведомить. В телефоне станьте Ольгой Ромашкиной или Натальей Беловой, откройте «Стройторг · магазин» и отправьте 100421; затем отправьте это событие.",
    ),
    ("demo_task", "A task for the couriers (examples/tasks)", "Задача курьерам (examples/tasks)"),
    ("demo_post_task", "Post the task to the couriers' group", "Отправить задачу в группу курьеров"),
    ("demo_survey", "Ask a survey now", "Провести опрос сейчас"),
    (
        "demo_survey_hint",
        "The surveys of examples/surveys are loaded; the NPS survey also starts by itself on order.completed.",
        "Опросы из examples/surveys загружены; опрос NPS ещё и сам начинается по событию order.completed.",
    ),
    ("demo_start_survey", "Start", "Начать"),
    (
        "demo_started_survey",
        "The survey has started: look at the person's phone.",
        "Опрос начат: загляните в телефон этого человека.",
    ),
    ("demo_broadcast", "A broadcast to a group", "Рассылка группе"),
    ("demo_broadcast_hint", "The same as the broadcasts page of the", "То же, что раздел рассылок в"),
    ("demo_group", "Group", "Группа"),
    (
        "demo_broadcast_sample",
        "Tomorrow at 9:00 — a general meeting in the hall on Lenina, 5. 📣",
        "Завтра в 9:00 — общее собрание в зале на Ленина, 5. 📣",
    ),
    ("demo_send_broadcast", "Send the broadcast", "Отправить рассылку"),
    ("demo_broadcast_created", "The broadcast is on its way.", "Рассылка отправляется."),
    ("demo_posted", "What 1C posted, and whom okno reached", "Что отправила 1С и кому доставил okno"),
    ("demo_nothing_yet", "Nothing posted yet.", "Пока ничего не отправлено."),
    ("demo_webhooks", "okno's webhooks received by 1C", "Вебхуки okno, полученные 1С"),
    (
        "demo_webhooks_hint",
        "Signed with HMAC and checked by 1C: button presses and answers, claimed tasks, survey answers.",
        "Подписаны HMAC и проверены 1С: нажатия кнопок и ответы, взятые задачи, ответы на опросы.",
    ),
    ("demo_received", "What the bots asked of 1C", "Что боты запросили у 1С"),
    (
        "demo_received_hint",
        "The lookups and forms of the example bots: product search, orders, tickets, vacation requests…",
        "Запросы и формы примеров ботов: поиск товаров, заказы, заявки, заявления на отпуск…",
    ),
    ("demo_received_nothing", "Nothing yet.", "Пока ничего."),
    ("demo_duplicate", "duplicate: nothing sent twice", "дубль: повторно ничего не отправлено"),
    ("demo_accepted", "Accepted by okno.", "Принято okno."),
    ("demo_failed", "Failed", "Не получилось"),
    ("demo_delivered_to", "to", "→"),
    ("demo_unresolved", "not reached", "не доставлено"),
    ("demo_status", "status", "статус"),
    ("demo_task_claimed_by", "taken by", "взял(а)"),
    ("demo_task_open", "open: nobody has taken it yet", "открыта: пока никто не взял"),
    ("demo_role_manager", "sales manager", "менеджер по продажам"),
    ("demo_role_client", "client (ООО «Ромашка»)", "клиент (ООО «Ромашка»)"),
    ("demo_role_customer", "new customer", "новый покупатель"),
    ("demo_role_employee", "salesperson", "продавец-консультант"),
    ("demo_role_director", "director", "директор"),
    ("demo_role_courier", "courier", "курьер"),
    ("demo_role_it", "IT specialist", "специалист ИТ"),
    ("demo_role_it_head", "head of IT", "руководитель ИТ"),
    ("demo_role_buyer", "buyer (purchasing)", "закупщик"),
    ("demo_role_hr", "HR", "отдел кадров"),
    (
        "demo_hint_manager",
        "Gets 1C's notifications about payments, blocked orders and shipments. Post «order.blocked» from the 1C console and answer it with a button: the answer reaches 1C as a signed webhook.",
        "Получает уведомления 1С об оплатах, блокировках и отгрузках. Отправьте «order.blocked» из пульта 1С и ответьте кнопкой — ответ придёт в 1С подписанным вебхуком.",
    ),
    (
        "demo_hint_client",
        "A client linked to 1C. Gets the shipment notice, a request to rate the manager and the NPS survey (post «order.completed»); can ask the shop bot about order 100421 and get told when its stage changes.",
        "Клиент, связанный с 1С. Получает уведомление об отгрузке, просьбу оценить менеджера и опрос NPS (отправьте «order.completed»); может спросить бота магазина о заказе 100421 и узнать, когда сменится этап.",
    ),
    (
        "demo_hint_customer",
        "A customer 1C does not know. Open «Стройторг · магазин», press Start, then «💬 Связаться с менеджером» and write: an operator answers from the operator window.",
        "Покупатель, которого 1С не знает. Откройте «Стройторг · магазин», нажмите «Начать», затем «💬 Связаться с менеджером» и напишите — оператор ответит из окна оператора.",
    ),
    (
        "demo_hint_employee",
        "The staff bot finds products in 1C (type «дрель»), the personal-account bot sends a vacation request to 1C, the support bot opens a ticket. Start the 7th-day survey for her from the 1C console.",
        "Бот сотрудника ищет товары в 1С (напишите «дрель»), личный кабинет отправляет в 1С заявление на отпуск, бот поддержки заводит заявку. Опрос 7-го дня для неё можно начать из пульта 1С.",
    ),
    (
        "demo_hint_director",
        "Employees' questions from «✉️ Обратная связь → ❓ Вопрос директору» arrive here: answer one with Reply and it goes back to the employee. Also sees the department stock reports.",
        "Сюда приходят вопросы сотрудников из «✉️ Обратная связь → ❓ Вопрос директору»: ответьте через «Ответить», и ответ уйдёт сотруднику. Видит также отчёты об остатках подразделений.",
    ),
    (
        "demo_hint_courier",
        "In «Курьеры Стройторга»: post the task from the 1C console and press «Взять» — of the two couriers only the first gets it; «Подробнее» sends the client's details privately.",
        "В «Курьеры Стройторга»: отправьте задачу из пульта 1С и нажмите «Взять» — из двух курьеров её получит только первый; «Подробнее» присылает данные клиента лично.",
    ),
    (
        "demo_hint_it",
        "Gets critical IT requests («it.request_updated») with a «Взял в работу» button.",
        "Получает критичные заявки в ИТ («it.request_updated») с кнопкой «Взял в работу».",
    ),
    (
        "demo_hint_it_head",
        "The head of IT: gets critical IT requests too, and the department stock reports.",
        "Руководитель ИТ: тоже получает критичные заявки, а также отчёты об остатках подразделений.",
    ),
    (
        "demo_hint_buyer",
        "In the purchasing group: gets «stock.below_minimum».",
        "В группе закупок: получает «stock.below_minimum».",
    ),
    (
        "demo_hint_hr",
        "HR: gets the vacation requests employees send from the personal-account bot.",
        "Отдел кадров: получает заявления на отпуск, которые сотрудники отправляют из личного кабинета.",
    ),
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
