<?php
// Connects to the `db` service by name with PDO MySQL, records this visit, lists the rows.
header('Content-Type: text/plain; charset=utf-8');
$dsn = sprintf('mysql:host=%s;dbname=%s;charset=utf8mb4', getenv('DB_HOST'), getenv('DB_NAME'));
try {
    $pdo = new PDO($dsn, getenv('DB_USER'), getenv('DB_PASSWORD'),
                   [PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION]);
    $pdo->exec('CREATE TABLE IF NOT EXISTS visits (id INT AUTO_INCREMENT PRIMARY KEY,
                at TIMESTAMP DEFAULT CURRENT_TIMESTAMP)');
    $pdo->exec('INSERT INTO visits () VALUES ()');
    echo "LNMP on berth\n";
    foreach ($pdo->query('SELECT id, body FROM notes ORDER BY id') as $row) {
        printf("note %d: %s\n", $row['id'], $row['body']);
    }
    $n = $pdo->query('SELECT COUNT(*) FROM visits')->fetchColumn();
    printf("visits: %d\n", $n);
} catch (PDOException $e) {
    http_response_code(500);
    echo 'database error: ' . $e->getMessage() . "\n";
}
