-- The MITA production schema as it stood at revision 0021_add_habit_completions (right before 0022),
-- squashed into its final form: migrations 0001-0021 plus the hand-run per-category daily_plan columns.
-- Column order, types, defaults and every constraint and index name are those production carries
-- (PostgreSQL's generated names such as users_pkey and *_fkey are written out here on purpose).
-- No BEGIN/COMMIT: Alembic runs this inside the migration's transaction. No data.

CREATE FUNCTION update_updated_at_column() RETURNS trigger AS $$
BEGIN NEW.updated_at = NOW(); RETURN NEW; END; $$ LANGUAGE plpgsql;

-- Parents first: users, challenges, goals, habits, installments are referenced by the others.

CREATE TABLE users (
    id uuid NOT NULL,
    email varchar NOT NULL,
    password_hash varchar NOT NULL,
    country varchar(2),
    annual_income numeric(12,2),
    is_premium boolean,
    created_at timestamptz,
    premium_until timestamp,
    password_reset_token varchar,
    password_reset_expires timestamptz,
    password_reset_attempts integer DEFAULT '0' NOT NULL,
    email_verified boolean DEFAULT 'false' NOT NULL,
    email_verification_token varchar,
    email_verification_expires timestamptz,
    name varchar,
    savings_goal numeric DEFAULT '0' NOT NULL,
    budget_method varchar DEFAULT '50/30/20 Rule' NOT NULL,
    currency varchar(3) DEFAULT 'USD' NOT NULL,
    region varchar,
    notifications_enabled boolean DEFAULT 'true' NOT NULL,
    dark_mode_enabled boolean DEFAULT 'false' NOT NULL,
    monthly_income numeric DEFAULT 0,
    has_onboarded boolean DEFAULT false NOT NULL,
    timezone varchar,
    failed_login_attempts integer DEFAULT '0' NOT NULL,
    account_locked_until timestamptz,
    updated_at timestamptz DEFAULT now() NOT NULL,
    token_version integer DEFAULT '1' NOT NULL,
    CONSTRAINT users_pkey PRIMARY KEY (id),
    CONSTRAINT users_email_key UNIQUE (email)
);
COMMENT ON COLUMN users.annual_income IS 'Added precision(12,2) for financial accuracy';
CREATE INDEX idx_users_password_reset_token ON users (password_reset_token);
CREATE INDEX idx_users_email_verification_token ON users (email_verification_token);
CREATE INDEX idx_users_email_verified ON users (email_verified);
CREATE INDEX idx_users_currency ON users (currency);
CREATE INDEX idx_users_region ON users (region);
CREATE INDEX idx_users_has_onboarded ON users (has_onboarded);
CREATE INDEX idx_users_updated_at ON users (updated_at);
CREATE INDEX idx_users_token_version ON users (token_version);
CREATE TRIGGER update_users_updated_at BEFORE UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION update_updated_at_column();

CREATE TABLE challenges (
    id varchar NOT NULL,
    name varchar(200) NOT NULL,
    description text NOT NULL,
    type varchar(50) NOT NULL,
    duration_days integer NOT NULL,
    reward_points integer,
    difficulty varchar(20) NOT NULL,
    start_month varchar(7) NOT NULL,
    end_month varchar(7) NOT NULL,
    created_at timestamptz DEFAULT CURRENT_TIMESTAMP,
    updated_at timestamptz DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT challenges_pkey PRIMARY KEY (id)
);

-- goals keeps naive timestamps and numeric(10,2); the comments are left over from 0006's (12,2).
CREATE TABLE goals (
    id uuid NOT NULL,
    user_id uuid NOT NULL,
    title varchar(200) NOT NULL,
    target_amount numeric(10,2) NOT NULL,
    saved_amount numeric(10,2) DEFAULT '0' NOT NULL,
    created_at timestamp DEFAULT now(),
    description text,
    category varchar(50),
    monthly_contribution numeric(10,2),
    status varchar(20) DEFAULT 'active' NOT NULL,
    progress numeric(5,2) DEFAULT '0' NOT NULL,
    target_date date,
    last_updated timestamp DEFAULT now() NOT NULL,
    completed_at timestamp,
    priority varchar(10) DEFAULT 'medium',
    deleted_at timestamptz,
    CONSTRAINT goals_pkey PRIMARY KEY (id),
    CONSTRAINT fk_goals_user_id FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
);
COMMENT ON COLUMN goals.target_amount IS 'Added precision(12,2) for financial accuracy';
COMMENT ON COLUMN goals.saved_amount IS 'Added precision(12,2) for financial accuracy';
CREATE INDEX ix_goals_user_id ON goals (user_id);
CREATE INDEX ix_goals_category ON goals (category);
CREATE INDEX ix_goals_status ON goals (status);
CREATE INDEX idx_goals_deleted_at ON goals (deleted_at) WHERE deleted_at IS NULL;

CREATE TABLE habits (
    id uuid NOT NULL,
    user_id uuid NOT NULL,
    title varchar NOT NULL,
    description varchar,
    created_at timestamp,
    CONSTRAINT habits_pkey PRIMARY KEY (id)
);
CREATE INDEX ix_habits_user_id ON habits (user_id);

CREATE TABLE installments (
    id uuid NOT NULL,
    user_id uuid NOT NULL,
    item_name varchar(200) NOT NULL,
    category varchar(50) DEFAULT 'other' NOT NULL,
    total_amount numeric(12,2) NOT NULL,
    payment_amount numeric(12,2) NOT NULL,
    interest_rate numeric(5,2) DEFAULT '0' NOT NULL,
    total_payments integer NOT NULL,
    payments_made integer DEFAULT '0' NOT NULL,
    payment_frequency varchar(20) DEFAULT 'monthly' NOT NULL,
    first_payment_date timestamptz NOT NULL,
    next_payment_date timestamptz NOT NULL,
    final_payment_date timestamptz NOT NULL,
    status varchar(20) DEFAULT 'active' NOT NULL,
    notes text,
    created_at timestamptz DEFAULT now(),
    updated_at timestamptz DEFAULT now(),
    deleted_at timestamptz,
    CONSTRAINT installments_pkey PRIMARY KEY (id),
    CONSTRAINT installments_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
);
CREATE INDEX ix_installments_user_id ON installments (user_id);
CREATE INDEX ix_installments_created_at ON installments (created_at);
CREATE INDEX idx_installments_deleted_at ON installments (deleted_at) WHERE deleted_at IS NULL;

-- transactions.amount stays unbounded numeric and spent_at nullable, as in production.
CREATE TABLE transactions (
    id uuid NOT NULL,
    user_id uuid NOT NULL,
    category varchar NOT NULL,
    amount numeric NOT NULL,
    currency varchar(3),
    spent_at timestamptz,
    created_at timestamptz,
    merchant varchar(200),
    location varchar(200),
    tags varchar[],
    is_recurring boolean DEFAULT 'false' NOT NULL,
    confidence_score double precision,
    receipt_url varchar(500),
    notes text,
    updated_at timestamptz DEFAULT now() NOT NULL,
    goal_id uuid,
    deleted_at timestamptz,
    CONSTRAINT transactions_pkey PRIMARY KEY (id),
    CONSTRAINT fk_transactions_goal_id FOREIGN KEY (goal_id) REFERENCES goals (id) ON DELETE SET NULL
);
CREATE INDEX ix_transactions_user_id ON transactions (user_id);
CREATE INDEX ix_transactions_spent_at ON transactions (spent_at);
CREATE INDEX ix_transactions_user_id_spent_at ON transactions (user_id, spent_at);
CREATE INDEX idx_transactions_merchant ON transactions (merchant);
CREATE INDEX idx_transactions_is_recurring ON transactions (is_recurring);
CREATE INDEX idx_transactions_updated_at ON transactions (updated_at);
CREATE INDEX ix_transactions_goal_id ON transactions (goal_id);
CREATE INDEX idx_transactions_deleted_at ON transactions (deleted_at) WHERE deleted_at IS NULL;
CREATE TRIGGER update_transactions_updated_at BEFORE UPDATE ON transactions
    FOR EACH ROW EXECUTE FUNCTION update_updated_at_column();

-- daily_plan: no FK to users and no unique key yet (0022 and 0023 add them).
CREATE TABLE daily_plan (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    user_id uuid NOT NULL,
    date timestamptz NOT NULL,
    plan_json jsonb,
    created_at timestamptz DEFAULT CURRENT_TIMESTAMP,
    category varchar(100),
    planned_amount numeric(12,2) DEFAULT 0.00,
    spent_amount numeric(12,2) DEFAULT 0.00,
    daily_budget numeric(12,2),
    status varchar(20) DEFAULT 'green',
    CONSTRAINT daily_plan_pkey PRIMARY KEY (id)
);
CREATE INDEX ix_daily_plan_user_id ON daily_plan (user_id);
CREATE INDEX ix_daily_plan_date ON daily_plan (date);
CREATE INDEX idx_daily_plan_category ON daily_plan (category);
CREATE INDEX idx_daily_plan_user_date_category ON daily_plan (user_id, date, category);

CREATE TABLE subscriptions (
    id uuid NOT NULL,
    user_id uuid NOT NULL,
    platform varchar NOT NULL,
    receipt jsonb NOT NULL,
    status varchar,
    created_at timestamptz,
    plan varchar,
    starts_at timestamptz,
    expires_at timestamptz,
    CONSTRAINT subscriptions_pkey PRIMARY KEY (id)
);
CREATE INDEX ix_subscriptions_user_id ON subscriptions (user_id);

CREATE TABLE ai_analysis_snapshots (
    id serial NOT NULL,
    user_id uuid NOT NULL,
    rating varchar,
    risk varchar,
    summary varchar,
    full_profile json,
    created_at timestamp DEFAULT now(),
    CONSTRAINT ai_analysis_snapshots_pkey PRIMARY KEY (id),
    CONSTRAINT ai_analysis_snapshots_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id)
);
CREATE INDEX ix_ai_analysis_snapshots_id ON ai_analysis_snapshots (id);

CREATE TABLE moods (
    id uuid NOT NULL,
    user_id uuid NOT NULL,
    date date NOT NULL,
    mood varchar NOT NULL,
    CONSTRAINT moods_pkey PRIMARY KEY (id)
);
CREATE INDEX ix_moods_user_id ON moods (user_id);
CREATE INDEX ix_moods_date ON moods (date);

CREATE TABLE push_tokens (
    id uuid NOT NULL,
    user_id uuid NOT NULL,
    token varchar NOT NULL,
    created_at timestamp DEFAULT now(),
    platform varchar NOT NULL,
    CONSTRAINT push_tokens_pkey PRIMARY KEY (id),
    CONSTRAINT push_tokens_token_key UNIQUE (token)
);
CREATE INDEX ix_push_tokens_user_id ON push_tokens (user_id);

CREATE TABLE challenge_participations (
    id uuid NOT NULL,
    user_id uuid NOT NULL,
    challenge_id varchar NOT NULL,
    month varchar(7) NOT NULL,
    status varchar(20),
    progress_percentage integer,
    days_completed integer,
    current_streak integer,
    best_streak integer,
    started_at timestamptz DEFAULT CURRENT_TIMESTAMP,
    completed_at timestamptz,
    last_updated timestamptz DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT challenge_participations_pkey PRIMARY KEY (id),
    CONSTRAINT challenge_participations_user_id_fkey
        FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT challenge_participations_challenge_id_fkey
        FOREIGN KEY (challenge_id) REFERENCES challenges (id) ON DELETE CASCADE
);
CREATE INDEX ix_challenge_participations_user_id ON challenge_participations (user_id);
CREATE INDEX ix_challenge_participations_challenge_id ON challenge_participations (challenge_id);
CREATE INDEX ix_challenge_participations_month ON challenge_participations (month);
CREATE INDEX ix_challenge_participations_status ON challenge_participations (status);

CREATE TABLE feature_usage_logs (
    id uuid NOT NULL,
    user_id uuid NOT NULL,
    feature varchar(100) NOT NULL,
    screen varchar(100),
    action varchar(100),
    extra_data json,
    session_id varchar(100),
    platform varchar(20),
    app_version varchar(20),
    "timestamp" timestamptz,
    CONSTRAINT feature_usage_logs_pkey PRIMARY KEY (id),
    CONSTRAINT feature_usage_logs_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id)
);
CREATE INDEX ix_feature_usage_logs_user_id ON feature_usage_logs (user_id);
CREATE INDEX ix_feature_usage_logs_feature ON feature_usage_logs (feature);
CREATE INDEX ix_feature_usage_logs_screen ON feature_usage_logs (screen);
CREATE INDEX ix_feature_usage_logs_session_id ON feature_usage_logs (session_id);
CREATE INDEX ix_feature_usage_logs_timestamp ON feature_usage_logs ("timestamp");

CREATE TABLE feature_access_logs (
    id uuid NOT NULL,
    user_id uuid NOT NULL,
    feature varchar(100) NOT NULL,
    has_access boolean NOT NULL,
    is_premium_feature boolean NOT NULL,
    converted_to_premium boolean,
    converted_at timestamptz,
    screen varchar(100),
    extra_data json,
    "timestamp" timestamptz,
    CONSTRAINT feature_access_logs_pkey PRIMARY KEY (id),
    CONSTRAINT feature_access_logs_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id)
);
CREATE INDEX ix_feature_access_logs_user_id ON feature_access_logs (user_id);
CREATE INDEX ix_feature_access_logs_feature ON feature_access_logs (feature);
CREATE INDEX ix_feature_access_logs_timestamp ON feature_access_logs ("timestamp");

CREATE TABLE paywall_impression_logs (
    id uuid NOT NULL,
    user_id uuid NOT NULL,
    screen varchar(100) NOT NULL,
    feature varchar(100),
    resulted_in_purchase boolean,
    purchase_timestamp timestamptz,
    impression_context varchar(200),
    extra_data json,
    "timestamp" timestamptz,
    CONSTRAINT paywall_impression_logs_pkey PRIMARY KEY (id),
    CONSTRAINT paywall_impression_logs_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id)
);
CREATE INDEX ix_paywall_impression_logs_user_id ON paywall_impression_logs (user_id);
CREATE INDEX ix_paywall_impression_logs_screen ON paywall_impression_logs (screen);
CREATE INDEX ix_paywall_impression_logs_timestamp ON paywall_impression_logs ("timestamp");

CREATE TABLE notifications (
    id uuid NOT NULL,
    user_id uuid NOT NULL,
    title varchar(255) NOT NULL,
    message text NOT NULL,
    type varchar(50) DEFAULT 'info' NOT NULL,
    priority varchar(20) DEFAULT 'medium' NOT NULL,
    image_url varchar(500),
    action_url varchar(500),
    data json,
    status varchar(20) DEFAULT 'pending' NOT NULL,
    channel varchar(20),
    is_read boolean DEFAULT 'false' NOT NULL,
    read_at timestamptz,
    scheduled_for timestamptz,
    sent_at timestamptz,
    delivered_at timestamptz,
    error_message text,
    retry_count varchar DEFAULT '0' NOT NULL,
    created_at timestamptz DEFAULT now(),
    updated_at timestamptz DEFAULT now(),
    expires_at timestamptz,
    category varchar(50),
    group_key varchar(100),
    CONSTRAINT notifications_pkey PRIMARY KEY (id),
    CONSTRAINT notifications_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
);
CREATE INDEX ix_notifications_user_id ON notifications (user_id);
CREATE INDEX ix_notifications_is_read ON notifications (is_read);
CREATE INDEX ix_notifications_scheduled_for ON notifications (scheduled_for);
CREATE INDEX ix_notifications_created_at ON notifications (created_at);
CREATE INDEX ix_notifications_group_key ON notifications (group_key);
CREATE INDEX ix_notifications_user_id_is_read_created_at ON notifications (user_id, is_read, created_at);

CREATE TABLE user_financial_profiles (
    id uuid NOT NULL,
    user_id uuid NOT NULL,
    monthly_income numeric(12,2) NOT NULL,
    current_balance numeric(12,2) NOT NULL,
    age_group varchar(10) DEFAULT '25-34' NOT NULL,
    credit_card_debt boolean DEFAULT 'false' NOT NULL,
    credit_card_payment numeric(12,2) DEFAULT '0' NOT NULL,
    other_loans_payment numeric(12,2) DEFAULT '0' NOT NULL,
    rent_payment numeric(12,2) DEFAULT '0' NOT NULL,
    subscriptions_payment numeric(12,2) DEFAULT '0' NOT NULL,
    planning_mortgage boolean DEFAULT 'false' NOT NULL,
    updated_at timestamptz DEFAULT now(),
    CONSTRAINT user_financial_profiles_pkey PRIMARY KEY (id),
    CONSTRAINT user_financial_profiles_user_id_fkey
        FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT user_financial_profiles_user_id_key UNIQUE (user_id)
);
CREATE INDEX ix_user_financial_profiles_user_id ON user_financial_profiles (user_id);

CREATE TABLE installment_calculations (
    id uuid NOT NULL,
    user_id uuid NOT NULL,
    installment_id uuid,
    purchase_amount numeric(12,2) NOT NULL,
    category varchar(50) NOT NULL,
    num_payments integer NOT NULL,
    interest_rate numeric(5,2) NOT NULL,
    monthly_payment numeric(12,2) NOT NULL,
    total_interest numeric(12,2) NOT NULL,
    risk_level varchar(10) NOT NULL,
    dti_ratio numeric(5,2) NOT NULL,
    payment_to_income_ratio numeric(5,2) NOT NULL,
    remaining_balance numeric(12,2) NOT NULL,
    risk_factors text,
    user_proceeded boolean DEFAULT 'false' NOT NULL,
    calculated_at timestamptz DEFAULT now(),
    CONSTRAINT installment_calculations_pkey PRIMARY KEY (id),
    CONSTRAINT installment_calculations_user_id_fkey
        FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT installment_calculations_installment_id_fkey
        FOREIGN KEY (installment_id) REFERENCES installments (id) ON DELETE SET NULL
);
CREATE INDEX ix_installment_calculations_user_id ON installment_calculations (user_id);
CREATE INDEX ix_installment_calculations_installment_id ON installment_calculations (installment_id);
CREATE INDEX ix_installment_calculations_calculated_at ON installment_calculations (calculated_at);

CREATE TABLE installment_achievements (
    id uuid NOT NULL,
    user_id uuid NOT NULL,
    installments_completed integer DEFAULT '0' NOT NULL,
    calculations_performed integer DEFAULT '0' NOT NULL,
    calculations_declined integer DEFAULT '0' NOT NULL,
    days_without_new_installment integer DEFAULT '0' NOT NULL,
    max_days_streak integer DEFAULT '0' NOT NULL,
    interest_saved numeric(12,2) DEFAULT '0' NOT NULL,
    achievement_level varchar(20) DEFAULT 'beginner' NOT NULL,
    last_calculation_date timestamptz,
    updated_at timestamptz DEFAULT now(),
    CONSTRAINT installment_achievements_pkey PRIMARY KEY (id),
    CONSTRAINT installment_achievements_user_id_fkey
        FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
);
CREATE INDEX ix_installment_achievements_user_id ON installment_achievements (user_id);

CREATE TABLE ai_advice_templates (
    id uuid NOT NULL,
    key varchar NOT NULL,
    text varchar NOT NULL,
    CONSTRAINT ai_advice_templates_pkey PRIMARY KEY (id)
);
CREATE UNIQUE INDEX ix_ai_advice_templates_key ON ai_advice_templates (key);

CREATE TABLE budget_advice (
    id uuid NOT NULL,
    user_id uuid NOT NULL,
    date timestamptz,
    type varchar NOT NULL,
    text varchar NOT NULL,
    CONSTRAINT budget_advice_pkey PRIMARY KEY (id)
);
CREATE INDEX ix_budget_advice_date ON budget_advice (date);
CREATE INDEX ix_budget_advice_user_id ON budget_advice (user_id);

-- expenses, user_answers and user_profiles carry user_id as varchar (no FK possible as is).
CREATE TABLE expenses (
    id serial NOT NULL,
    user_id varchar NOT NULL,
    action varchar NOT NULL,
    amount double precision NOT NULL,
    date date NOT NULL,
    CONSTRAINT expenses_pkey PRIMARY KEY (id)
);
CREATE INDEX ix_expenses_id ON expenses (id);
CREATE INDEX ix_expenses_user_id ON expenses (user_id);

CREATE TABLE notification_logs (
    id uuid NOT NULL,
    user_id uuid NOT NULL,
    channel varchar NOT NULL,
    message varchar NOT NULL,
    success boolean,
    created_at timestamptz,
    CONSTRAINT notification_logs_pkey PRIMARY KEY (id)
);
CREATE INDEX ix_notification_logs_user_id ON notification_logs (user_id);

CREATE TABLE user_answers (
    id serial NOT NULL,
    user_id varchar NOT NULL,
    question_key varchar NOT NULL,
    answer_json varchar,
    CONSTRAINT user_answers_pkey PRIMARY KEY (id)
);

CREATE TABLE user_profiles (
    id serial NOT NULL,
    user_id varchar NOT NULL,
    data varchar,
    CONSTRAINT user_profiles_pkey PRIMARY KEY (id),
    CONSTRAINT user_profiles_user_id_key UNIQUE (user_id)
);

CREATE TABLE habit_completions (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    habit_id uuid NOT NULL,
    user_id uuid NOT NULL,
    completed_at timestamptz DEFAULT now() NOT NULL,
    notes text,
    created_at timestamptz DEFAULT now() NOT NULL,
    CONSTRAINT habit_completions_pkey PRIMARY KEY (id),
    CONSTRAINT habit_completions_habit_id_fkey FOREIGN KEY (habit_id) REFERENCES habits (id) ON DELETE CASCADE,
    CONSTRAINT habit_completions_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
);
CREATE INDEX ix_habit_completions_habit_id ON habit_completions (habit_id);
CREATE INDEX ix_habit_completions_user_id ON habit_completions (user_id);
CREATE INDEX ix_habit_completions_completed_at ON habit_completions (completed_at);
CREATE INDEX ix_habit_completions_user_date ON habit_completions (user_id, completed_at);
