# Sourced by Spark's launch scripts (spark-class). The master and worker daemons themselves
# need little heap; the executors they start get spark.executor.memory.
export SPARK_DAEMON_MEMORY=${SPARK_DAEMON_MEMORY:-192m}
export SPARK_NO_DAEMONIZE=1
