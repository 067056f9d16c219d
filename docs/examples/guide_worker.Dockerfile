# The worker's image: the handler module, its command, and sqs-cluster.
FROM python:3.12-slim
WORKDIR /app
RUN pip install --no-cache-dir "sqs-cluster[cli]"
COPY guide_worker.py guide_worker.sh ./
CMD ["bash", "guide_worker.sh"]
