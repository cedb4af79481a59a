-- MySQL/MariaDB set-up for Liver Tumor Detection and Analysis (run as root once:
--   mysql -u root < sql/create_database.sql
-- then set DATABASE_URL=mysql://tumor:tumor@127.0.0.1:3306/tumor and run ./run.sh).
-- The tables come from Django migrations; this only creates the database and its user.
-- Change the password for anything beyond a local installation.

CREATE DATABASE IF NOT EXISTS tumor CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

CREATE USER IF NOT EXISTS 'tumor'@'localhost' IDENTIFIED BY 'tumor';
CREATE USER IF NOT EXISTS 'tumor'@'127.0.0.1' IDENTIFIED BY 'tumor';

-- Everything Django's migrations need on the application database.
GRANT ALL PRIVILEGES ON tumor.* TO 'tumor'@'localhost';
GRANT ALL PRIVILEGES ON tumor.* TO 'tumor'@'127.0.0.1';

-- The test runner creates and drops test_tumor (pytest / ./test.sh).
GRANT ALL PRIVILEGES ON test_tumor.* TO 'tumor'@'localhost';
GRANT ALL PRIVILEGES ON test_tumor.* TO 'tumor'@'127.0.0.1';

FLUSH PRIVILEGES;
